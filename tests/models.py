"""Models for the tests: SqueezeNet's folder as installed, and a second real model made here.

No weights can be downloaded here, so the second model is built from SqueezeNet with the `onnx`
package: a superclass classifier (dog, cat, bird, vehicle, food, other) whose last layer adds
up SqueezeNet's ImageNet probabilities by class group. It takes another input than SqueezeNet
(192x192 cut from a shorter side of 219, NHWC, BGR, values 0-255) and does SqueezeNet's normalization and
resize inside its graph, so that a worker that ignored the card's preprocessing would answer
wrongly; its output is probabilities, not logits.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter
from PIL import Image
from skimage import data as samples

from shared.model_cards import CARD_FILENAME, labels_sha256, read_card
from tests.processes import ROOT, SHARED_IMAGES

SQUEEZENET = ROOT / "models" / "squeezenet"
SQUEEZENET_INPUT = read_card(SQUEEZENET).card.input
SUPERCLASS = "superclass"
SUPERCLASSES = ("dog", "cat", "bird", "vehicle", "food", "other")
SIZE = 192
# SqueezeNet's ratio of resize to crop (256 to 224), at this model's size.
SHORTER_SIDE = 219
OPSET = 13
_VEHICLES = (
    "ambulance", "beach wagon", "cab", "convertible", "jeep", "limousine", "minivan", "Model T",
    "pickup", "racer", "sports car", "tow truck", "trailer truck", "fire engine", "garbage truck",
    "minibus", "school bus", "trolleybus", "moving van", "police van", "passenger car",
    "electric locomotive", "steam locomotive", "freight car", "bullet train", "mountain bike",
    "bicycle-built-for-two", "motor scooter", "moped", "tractor", "forklift", "go-kart",
    "golfcart", "snowmobile", "tank", "airliner", "warplane", "streetcar", "half track",
)  # fmt: skip


def groups(labels: list[str]) -> np.ndarray:
    """The (1000, 6) matrix that adds ImageNet classes up into superclasses."""
    index = {label: i for i, label in enumerate(labels)}
    members = {
        "dog": range(151, 269),
        "cat": range(281, 286),
        "bird": [*range(7, 25), *range(80, 101), *range(127, 147)],
        "vehicle": [index[name] for name in _VEHICLES],
        "food": [i for i in range(924, 970) if labels[i] not in ("hay", "cup")],
    }
    matrix = np.zeros((len(labels), len(SUPERCLASSES)), dtype=np.float32)
    for column, name in enumerate(SUPERCLASSES[:-1]):
        matrix[list(members[name]), column] = 1.0
    matrix[:, -1] = 1.0 - matrix[:, :-1].sum(axis=1)
    assert matrix.sum(axis=1).max() == 1.0  # no class in two groups
    return matrix


def superclass_graph() -> onnx.ModelProto:
    """SqueezeNet inside its own preprocessing and a superclass head."""
    squeezenet = version_converter.convert_version(
        onnx.load(SQUEEZENET / "squeezenet1.1-7.onnx"), OPSET
    )
    labels = (SQUEEZENET / "imagenet_labels.txt").read_text().splitlines()
    inner_in = squeezenet.graph.input[0].name
    inner_out = squeezenet.graph.output[0].name
    constants = [
        numpy_helper.from_array(np.asarray([2, 1, 0], np.int64), "bgr_to_rgb"),
        numpy_helper.from_array(np.asarray(255.0, np.float32), "full_scale"),
        numpy_helper.from_array(
            np.asarray([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1), "mean"
        ),
        numpy_helper.from_array(
            np.asarray([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1), "std"
        ),
        numpy_helper.from_array(np.asarray([1, 3, 224, 224], np.int64), "sizes"),
        numpy_helper.from_array(np.asarray([], np.float32), "no_roi"),
        numpy_helper.from_array(np.asarray([], np.float32), "no_scales"),
        numpy_helper.from_array(groups(labels), "groups"),
    ]
    before = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Gather", ["nchw", "bgr_to_rgb"], ["rgb"], axis=1),
        helper.make_node("Div", ["rgb", "full_scale"], ["unit"]),
        helper.make_node("Sub", ["unit", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["normalized"]),
        helper.make_node(
            "Resize", ["normalized", "no_roi", "no_scales", "sizes"], [inner_in], mode="linear"
        ),
    ]
    after = [
        helper.make_node("Softmax", [inner_out], ["imagenet"], axis=1),
        helper.make_node("MatMul", ["imagenet", "groups"], ["superclass"]),
    ]
    graph = helper.make_graph(
        [*before, *squeezenet.graph.node, *after],
        "superclass",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("superclass", TensorProto.FLOAT, [1, len(SUPERCLASSES)])],
        [*constants, *squeezenet.graph.initializer],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = squeezenet.ir_version
    onnx.checker.check_model(model)
    return model


def card_text(*, name: str, version: str, model_sha256: str, labels_digest: str) -> str:
    """The superclass model's card."""
    return f"""\
name = "{name}"
version = "{version}"
title = "Superclasses"
description = "Dog, cat, bird, vehicle, food or other: SqueezeNet 1.1's ImageNet classes, added up"

[model]
file = "superclass.onnx"
sha256 = ["{model_sha256}"]

[labels]
file = "labels.txt"
sha256 = ["{labels_digest}"]

[input]
height = {SIZE}
width = {SIZE}
resize = "shorter_side_crop"
shorter_side = {SHORTER_SIDE}
scale = 1
channels = "BGR"
layout = "NHWC"

[output]
classes = {len(SUPERCLASSES)}
kind = "probabilities"
"""


def install_superclass(models_dir: Path, *, name: str = SUPERCLASS, version: str = "1") -> Path:
    """The superclass model's folder in `models_dir` (its graph built once per session)."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    data = _superclass_bytes()
    (folder / "superclass.onnx").write_bytes(data)
    labels = "".join(f"{label}\n" for label in SUPERCLASSES).encode()
    (folder / "labels.txt").write_bytes(labels)
    (folder / CARD_FILENAME).write_text(
        card_text(
            name=name,
            version=version,
            model_sha256=hashlib.sha256(data).hexdigest(),
            labels_digest=labels_sha256(labels),
        )
    )
    return folder


# Real photos: each one's name, JPEG bytes, SqueezeNet's top-1 class and the superclass model's.
Photo = tuple[str, bytes, str, str]


def photos() -> list[Photo]:
    """The team's photos and scikit-image's samples, with what each model answers."""
    return [
        (
            "labrador.jpg",
            (SHARED_IMAGES / "labrador.jpg").read_bytes(),
            "Labrador retriever",
            "dog",
        ),
        ("chelsea.jpg", _jpeg(samples.chelsea()), "Egyptian cat", "cat"),
        ("coffee.jpg", _jpeg(samples.coffee()), "espresso", "food"),
        ("fox.jpg", (SHARED_IMAGES / "red-fox-4928x3280.jpg").read_bytes(), "red fox", "other"),
    ]


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG")
    return buffer.getvalue()


def models_dir(base: Path) -> Path:
    """A MODELS_DIR with SqueezeNet (its installed files) and the superclass model."""
    base.mkdir(parents=True, exist_ok=True)
    if not (base / "squeezenet").exists():
        shutil.copytree(SQUEEZENET, base / "squeezenet")
    install_superclass(base)
    return base


_built: list[bytes] = []


def _superclass_bytes() -> bytes:
    if not _built:
        _built.append(superclass_graph().SerializeToString())
    return _built[0]


if __name__ == "__main__":
    import sys

    print(models_dir(Path(sys.argv[1])))

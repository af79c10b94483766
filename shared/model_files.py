"""The model: where it and its labels come from, the checksums that prove a file is the right one,
and the input it expects."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "SqueezeNet 1.1"
MODEL_DESCRIPTION = (
    "SqueezeNet 1.1 trained on ImageNet-1k (ONNX model zoo, opset 7): 1000 classes, "
    "published top-1 56.34 %, top-5 79.12 %"
)
# The published preprocessing the model was trained with (`worker.images` implements it).
RESIZE_SHORTER_SIDE = 256
CROP_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESSING_DESCRIPTION = (
    f"RGB; resize shorter side to {RESIZE_SHORTER_SIDE} (bilinear); centre crop "
    f"{CROP_SIZE}x{CROP_SIZE}; scale to [0, 1]; normalize mean {list(MEAN)} std {list(STD)}; "
    "NCHW float32"
)
INPUT_SHAPE = (1, 3, CROP_SIZE, CROP_SIZE)
OUTPUT_SHAPE = (1, 1000)


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A file the project needs, its public address and every sha256 known to be good."""

    filename: str
    url: str
    sha256: frozenset[str]
    text: bool = False


MODEL_FILE = ModelFile(
    filename="squeezenet1.1-7.onnx",
    url=(
        "https://github.com/onnx/models/raw/main/validated/vision/classification/"
        "squeezenet/model/squeezenet1.1-7.onnx"
    ),
    sha256=frozenset(
        {
            # The ONNX model zoo's file.
            "1eeff551a67ae8d565ca33b572fc4b66e3ef357b0eb2863bb9ff47a918cc4088",
            # The team copy: same weights, re-assembled, not byte-identical.
            "bb080150e8be733c09561a80d4a13e10ebd7435d8ab55a7b4366b9ef097ebe5d",
        }
    ),
)
LABELS_FILE = ModelFile(
    filename="imagenet_labels.txt",
    url="https://raw.githubusercontent.com/pytorch/hub/master/imagenet_classes.txt",
    # Upstream (pytorch/hub) lacks the final newline the team copy has; `content_sha256` adds
    # it before hashing, so this one checksum proves both.
    sha256=frozenset({"e697a491aa735cc6c2aaf982f8e86e8fc7b0a1ea7750a2cc6a2bdfc1e109012f"}),
    text=True,
)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(spec: ModelFile, data: bytes) -> str:
    """The checksum compared against `spec.sha256`; text files are hashed with a final newline."""
    if spec.text and not data.endswith(b"\n"):
        data += b"\n"
    return hashlib.sha256(data).hexdigest()


def read_labels(path: Path) -> list[str]:
    """The class names, index = line number."""
    labels = path.read_text(encoding="utf-8").splitlines()
    if len(labels) != OUTPUT_SHAPE[1]:
        raise ValueError(f"{path} has {len(labels)} labels, expected {OUTPUT_SHAPE[1]}")
    return labels

"""A model, loaded from its folder (`shared.model_cards`) once per worker process and kept in
memory, refused at load with one clear message when its files do not match its card.

A group of jobs can run as one batch through the model (WORKER_BATCH_INFERENCE): on a GPU that
is where its throughput comes from; on a CPU a batch is no faster per image than one image at a
time (docs/PERFORMANCE.md), so by default only CUDA batches. A file that fixes its batch axis at
1 (as the published SqueezeNet does) is made dynamic for batching when loaded (with the `onnx`
package), the file itself left as it is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from shared.errors import ModelError
from shared.model_cards import (
    ModelCard,
    ModelFolder,
    labels_sha256,
    read_card,
    read_labels,
    sha256_file,
)

log = logging.getLogger(__name__)

BatchInference = Literal["auto", "on", "off"]
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True, slots=True)
class Classifier:
    """An onnxruntime session with its card, labels and provenance."""

    session: ort.InferenceSession
    input_name: str
    card: ModelCard
    labels: list[str]
    sha256: str
    provider: str
    threads: int
    load_seconds: float
    # Whether several images may go through the model in one call (a dynamic batch axis).
    batches: bool = False

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """The model's output for a batch, shape (N, classes): logits or probabilities, as
        the card says."""
        (scores,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(scores)


def load_classifier(
    model: ModelFolder, *, threads: int, batch: BatchInference = "off"
) -> Classifier:
    """Load and check a model; `ModelError` with a clear message when a file is missing, is
    not the one its card names (sha256), is not ONNX, or does not take or give what the card
    says. `batch`: run groups as one batch always, never, or on a GPU only (`auto`)."""
    started = time.perf_counter()
    card = model.card
    for path, what in ((model.model_path, "model"), (model.labels_path, "labels")):
        if not path.is_file():
            raise ModelError(
                f"The {what} file {path} of model {card.name!r} is missing; install it with "
                "`uv run python scripts/download_model.py` (or `--from DIR` offline)"
            )
    sha256 = _checked_files(model)
    labels = read_labels(model.labels_path)
    session = _session(model.model_path.read_bytes(), model, threads=threads)
    _check_shapes(session, model, classes=len(labels))
    batches = batch == "on" or (batch == "auto" and session.get_providers()[0] == CUDA)
    if batches:
        session = _batching(session, model, threads=threads)
        batches = session.get_inputs()[0].shape[0] != 1
    # The first run allocates onnxruntime's buffers; paying it here keeps it off the first job.
    warm_up = np.zeros(card.input.shape(), dtype=np.float32)
    session.run(None, {session.get_inputs()[0].name: warm_up})
    return Classifier(
        session=session,
        input_name=session.get_inputs()[0].name,
        card=card,
        labels=labels,
        sha256=sha256,
        provider=session.get_providers()[0],
        threads=threads,
        load_seconds=time.perf_counter() - started,
        batches=batches,
    )


def load_named(
    models_dir: Path, name: str, *, threads: int, batch: BatchInference = "off"
) -> Classifier:
    """The model `name` of MODELS_DIR (`load_classifier` of its folder)."""
    return load_classifier(read_card(models_dir / name), threads=threads, batch=batch)


def _checked_files(model: ModelFolder) -> str:
    """The model file's sha256, once both files match their card's checksums."""
    card = model.card
    sha256 = sha256_file(model.model_path)
    if sha256 not in card.model.sha256:
        raise ModelError(
            f"The model file {model.model_path} has sha256 {sha256}, not one its card lists "
            f"({', '.join(card.model.sha256)}): a wrong or damaged file, or a card to update"
        )
    try:
        labels_digest = labels_sha256(model.labels_path.read_bytes())
        read_labels(model.labels_path)
    except UnicodeDecodeError as exc:
        raise ModelError(f"The labels file {model.labels_path} is not UTF-8 text: {exc}") from exc
    if labels_digest not in card.labels.sha256:
        raise ModelError(
            f"The labels file {model.labels_path} has sha256 {labels_digest}, not one its card "
            f"lists ({', '.join(card.labels.sha256)})"
        )
    return sha256


def _batching(
    session: ort.InferenceSession, model: ModelFolder, *, threads: int
) -> ort.InferenceSession:
    """The model with a dynamic batch axis, proved on a batch of two; or `session` as it was,
    with a warning, where that cannot be done."""
    try:
        import onnx  # the worker's optional dependency, for batching only

        graph = onnx.load_from_string(model.model_path.read_bytes())
        for value in (*graph.graph.input[:1], *graph.graph.output[:1]):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        batching = _session(graph.SerializeToString(), model, threads=threads)
        two = np.zeros(model.card.input.shape(batch=2), dtype=np.float32)
        batching.run(None, {batching.get_inputs()[0].name: two})
    except Exception as exc:  # onnx missing, or a graph that fixes its batch size inside
        log.warning("batched inference is off: %s cannot run batches (%s)", model.model_path, exc)
        return session
    return batching


def _session(data: bytes, model: ModelFolder, *, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    preferred = (CUDA, "CPUExecutionProvider")
    providers = [p for p in preferred if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(
            f"The model file {model.model_path} is corrupt or not ONNX: {exc}"
        ) from exc


def _check_shapes(session: ort.InferenceSession, model: ModelFolder, *, classes: int) -> None:
    """The model takes one float tensor of the card's shape (its batch axis 1 or open) and
    gives one score per label."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected_in = model.card.input.shape()
    given_in, given_out = list(inputs[0].shape), list(outputs[0].shape)
    if len(inputs) != 1 or not _fits(given_in, expected_in) or inputs[0].type != "tensor(float)":
        raise ModelError(
            f"The model file {model.model_path} takes {[(i.shape, i.type) for i in inputs]}; its "
            f"card says one float tensor of shape {list(expected_in)} ({model.card.input.layout})"
        )
    declared = model.card.output.classes
    if classes != declared:
        raise ModelError(
            f"The labels file {model.labels_path} has {classes} labels; the card of model "
            f"{model.card.name!r} says output.classes = {declared}"
        )
    if not _fits(given_out, (1, classes)):
        raise ModelError(
            f"The model file {model.model_path} gives {given_out}, but its card and labels "
            f"say {classes} classes: expected [1, {classes}]"
        )


def _fits(given: list[object], expected: tuple[int, ...]) -> bool:
    """A shape as the model declares it (the batch axis may be a name or unknown) against the
    one expected."""
    if len(given) != len(expected):
        return False
    batch_ok = given[0] == expected[0] or not isinstance(given[0], int)
    return batch_ok and all(g == e for g, e in zip(given[1:], expected[1:], strict=True))

"""The ONNX model, loaded once per worker process and kept in memory.

A group of jobs can run as one batch through the model (WORKER_BATCH_INFERENCE): on a GPU that
is where its throughput comes from; on a CPU a batch is no faster per image than one image at a
time (docs/PERFORMANCE.md), so by default only CUDA batches. The published SqueezeNet file fixes
its batch axis at 1; for batching it is made dynamic when loaded (with the `onnx` package), the
file itself left as it is.
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
from shared.model_files import (
    INPUT_SHAPE,
    MODEL_FILE,
    MODEL_NAME,
    OUTPUT_SHAPE,
    read_labels,
    sha256_file,
)

log = logging.getLogger(__name__)

BatchInference = Literal["auto", "on", "off"]
CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True, slots=True)
class Classifier:
    """An onnxruntime session with its labels and provenance."""

    session: ort.InferenceSession
    input_name: str
    labels: list[str]
    sha256: str
    provider: str
    threads: int
    load_seconds: float
    name: str = MODEL_NAME
    # Whether several images may go through the model in one call (a dynamic batch axis).
    batches: bool = False

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """Raw class scores (logits), shape (N, 1000)."""
        (scores,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(scores)


def load_classifier(
    model_path: Path, labels_path: Path, *, threads: int, batch: BatchInference = "off"
) -> Classifier:
    """Load and check the model; `ModelError` with a clear message when it is missing or broken.
    `batch`: run groups as one batch always, never, or on a GPU only (`auto`)."""
    started = time.perf_counter()
    for path, what in ((model_path, "model"), (labels_path, "labels")):
        if not path.is_file():
            raise ModelError(
                f"The {what} file {path} is missing; install it with "
                "`uv run python scripts/download_model.py` (or `--from DIR` offline)"
            )
    try:
        labels = read_labels(labels_path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"The labels file {labels_path} is unusable: {exc}") from exc
    session = _session(model_path.read_bytes(), model_path, threads=threads)
    _check_shapes(session, model_path)
    batches = batch == "on" or (batch == "auto" and session.get_providers()[0] == CUDA)
    if batches:
        session = _batching(session, model_path, threads=threads)
        batches = session.get_inputs()[0].shape[0] != 1
    # The first run allocates onnxruntime's buffers; paying it here keeps it off the first job.
    session.run(None, {session.get_inputs()[0].name: np.zeros(INPUT_SHAPE, dtype=np.float32)})
    sha256 = sha256_file(model_path)
    if sha256 not in MODEL_FILE.sha256:
        log.warning("Model %s has an unknown sha256 %s; serving it anyway", model_path, sha256)
    return Classifier(
        session=session,
        input_name=session.get_inputs()[0].name,
        labels=labels,
        sha256=sha256,
        provider=session.get_providers()[0],
        threads=threads,
        load_seconds=time.perf_counter() - started,
        batches=batches,
    )


def _batching(
    session: ort.InferenceSession, model_path: Path, *, threads: int
) -> ort.InferenceSession:
    """The model with a dynamic batch axis, proved on a batch of two; or `session` as it was,
    with a warning, where that cannot be done."""
    try:
        import onnx  # the worker's optional dependency, for batching only

        model = onnx.load_from_string(model_path.read_bytes())
        for value in (*model.graph.input[:1], *model.graph.output[:1]):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        batching = _session(model.SerializeToString(), model_path, threads=threads)
        two = np.zeros((2, *INPUT_SHAPE[1:]), dtype=np.float32)
        batching.run(None, {batching.get_inputs()[0].name: two})
    except Exception as exc:  # onnx missing, or a graph that fixes its batch size inside
        log.warning("batched inference is off: %s cannot run batches (%s)", model_path, exc)
        return session
    return batching


def _session(model: bytes, model_path: Path, *, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    preferred = (CUDA, "CPUExecutionProvider")
    providers = [p for p in preferred if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"The model file {model_path} is corrupt or not ONNX: {exc}") from exc


def _check_shapes(session: ort.InferenceSession, model_path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if list(inputs[0].shape) != list(INPUT_SHAPE) or list(outputs[0].shape) != list(OUTPUT_SHAPE):
        raise ModelError(
            f"The model file {model_path} has input {inputs[0].shape} and output "
            f"{outputs[0].shape}; expected {list(INPUT_SHAPE)} and {list(OUTPUT_SHAPE)}"
        )

"""The ONNX model, loaded once per worker process and kept in memory."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

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

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """Raw class scores (logits), shape (N, 1000)."""
        (scores,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(scores)


def load_classifier(model_path: Path, labels_path: Path, *, threads: int) -> Classifier:
    """Load and check the model; `ModelError` with a clear message when it is missing or broken."""
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
    session = _session(model_path, threads=threads)
    _check_shapes(session, model_path)
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
    )


def _session(model_path: Path, *, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    preferred = ("CUDAExecutionProvider", "CPUExecutionProvider")
    providers = [p for p in preferred if p in ort.get_available_providers()]
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelError(f"The model file {model_path} is corrupt or not ONNX: {exc}") from exc


def _check_shapes(session: ort.InferenceSession, model_path: Path) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if list(inputs[0].shape) != list(INPUT_SHAPE) or list(outputs[0].shape) != list(OUTPUT_SHAPE):
        raise ModelError(
            f"The model file {model_path} has input {inputs[0].shape} and output "
            f"{outputs[0].shape}; expected {list(INPUT_SHAPE)} and {list(OUTPUT_SHAPE)}"
        )

"""decode -> preprocess -> inference -> softmax -> top-k, as plain functions of their inputs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from shared import tracing
from shared.schemas import Prediction
from worker.images import decode_image, preprocess
from worker.model import Classifier


@dataclass(frozen=True, slots=True)
class Classification:
    predictions: list[Prediction]
    decode_seconds: float
    preprocess_seconds: float
    inference_seconds: float


@dataclass(frozen=True, slots=True)
class Decoding:
    """How images are decoded: PROGRESSIVE_JPEG_FAST_PATH, WORKER_MAX_IMAGE_MB (0: no limit)."""

    fast_progressive: bool = True
    max_memory_mb: float = 0


DEFAULT_DECODING = Decoding()


def classify(
    data: bytes,
    *,
    classifier: Classifier,
    top_k: int,
    max_pixels: int,
    decoding: Decoding = DEFAULT_DECODING,
) -> Classification:
    """Classify encoded image bytes; raises the `shared.errors` types on bad input."""
    t0 = time.perf_counter()
    with tracing.span("decode"):
        image = decode_image(
            data,
            max_pixels=max_pixels,
            fast_progressive=decoding.fast_progressive,
            max_memory_mb=decoding.max_memory_mb,
        )
    t1 = time.perf_counter()
    with tracing.span("preprocess"):
        batch = preprocess(image)
    t2 = time.perf_counter()
    with tracing.span("inference"):
        scores = classifier.scores(batch)[0]
    t3 = time.perf_counter()
    predictions = top_predictions(softmax(scores), classifier.labels, k=top_k)
    return Classification(predictions, t1 - t0, t2 - t1, t3 - t2)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64."""
    shifted = scores.astype(np.float64) - np.max(scores, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=-1, keepdims=True))


def top_predictions(probabilities: np.ndarray, labels: list[str], *, k: int) -> list[Prediction]:
    """The k most probable classes, most probable first (ties by lower class id)."""
    k = min(k, probabilities.shape[-1])
    order = np.lexsort((np.arange(probabilities.size), -probabilities))[:k]
    return [
        Prediction(class_id=int(i), label=labels[i], probability=float(probabilities[i]))
        for i in order
    ]

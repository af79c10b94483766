"""decode -> preprocess -> inference -> softmax -> top-k, as plain functions of their inputs.

Nothing here knows of Celery, Redis or metrics: it returns what happened (the timings, a
decoding fallback), and its callers record it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared import tracing
from shared.model_cards import InputSpec
from shared.schemas import Prediction
from worker.images import decode, preprocess
from worker.model import Classifier


@dataclass(frozen=True, slots=True)
class Classification:
    predictions: list[Prediction]
    decode_seconds: float
    preprocess_seconds: float
    inference_seconds: float
    # Why a large progressive JPEG was decoded whole, if it was (`worker.images.Decoded`).
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Decoding:
    """How images are decoded: PROGRESSIVE_JPEG_FAST_PATH, WORKER_MAX_IMAGE_MB (0: no limit)."""

    fast_progressive: bool = True
    max_memory_mb: float = 0


DEFAULT_DECODING = Decoding()


@dataclass(frozen=True, slots=True)
class Prepared:
    """An image made ready for the model: its tensor (a batch of one) and what it took."""

    tensor: np.ndarray
    decode_seconds: float
    preprocess_seconds: float
    fallback: str | None = None


def prepare(
    data: bytes, *, spec: InputSpec, max_pixels: int, decoding: Decoding = DEFAULT_DECODING
) -> Prepared:
    """Decode and preprocess encoded image bytes for a model's input (`spec`); raises the
    `shared.errors` types on bad input."""
    t0 = time.perf_counter()
    with tracing.span("decode"):
        decoded = decode(
            data,
            target=spec,
            max_pixels=max_pixels,
            fast_progressive=decoding.fast_progressive,
            max_memory_mb=decoding.max_memory_mb,
        )
    t1 = time.perf_counter()
    with tracing.span("preprocess"):
        tensor = preprocess(decoded.image, spec)
    return Prepared(tensor, t1 - t0, time.perf_counter() - t1, decoded.fallback)


def classify_prepared(
    prepared: Sequence[Prepared], *, classifier: Classifier, top_ks: Sequence[int]
) -> list[Classification]:
    """One inference call for every prepared image (as one batch), each image its own top-k;
    each is charged an equal share of the call's time."""
    t0 = time.perf_counter()
    with tracing.span("inference"):
        batch = (
            prepared[0].tensor
            if len(prepared) == 1
            else np.concatenate([p.tensor for p in prepared])
        )
        scores = classifier.scores(batch)
    share = (time.perf_counter() - t0) / len(prepared)
    probabilities = (
        softmax(scores)
        if classifier.card.output.kind == "logits"
        # A model's own probabilities may stray past 1 by a rounding error.
        else np.clip(scores.astype(np.float64), 0.0, 1.0)
    )
    return [
        Classification(
            top_predictions(probabilities[i], classifier.labels, k=top_k),
            p.decode_seconds,
            p.preprocess_seconds,
            share,
            p.fallback,
        )
        for i, (p, top_k) in enumerate(zip(prepared, top_ks, strict=True))
    ]


def classify(
    data: bytes,
    *,
    classifier: Classifier,
    top_k: int,
    max_pixels: int,
    decoding: Decoding = DEFAULT_DECODING,
) -> Classification:
    """Classify encoded image bytes; raises the `shared.errors` types on bad input."""
    spec = classifier.card.input
    ready = prepare(data, spec=spec, max_pixels=max_pixels, decoding=decoding)
    (classification,) = classify_prepared([ready], classifier=classifier, top_ks=[top_k])
    return classification


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

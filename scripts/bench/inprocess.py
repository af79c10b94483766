"""Measurements without network or queue: the physical limit and the decode comparison."""

from __future__ import annotations

import io
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from shared.settings import get_settings
from worker.images import decode_image, preprocess
from worker.model import Classifier, load_named
from worker.pipeline import classify, softmax

_classifier: Classifier | None = None


def _load() -> Classifier:
    settings = get_settings()
    return load_named(settings.models_dir, settings.default_model_name(), threads=1)


def _init() -> None:
    global _classifier
    _classifier = _load()


def _run(job: tuple[list[bytes], int]) -> int:
    images, rounds = job
    assert _classifier is not None
    for _ in range(rounds):
        for data in images:
            classify(data, classifier=_classifier, top_k=5, max_pixels=10**9)
    return rounds * len(images)


def limit(paths: list[Path], *, processes: int, rounds: int) -> float:
    """Images per second: decode + preprocess + inference in plain processes, one per core."""
    images = [p.read_bytes() for p in paths]
    with mp.get_context("fork").Pool(processes, initializer=_init) as pool:
        pool.map(_run, [(images[:1], 1)] * processes)  # warm-up: model loaded, caches hot
        started = time.perf_counter()
        done = sum(pool.map(_run, [(images, rounds)] * processes))
        return done / (time.perf_counter() - started)


def classifier_of(data: bytes) -> Callable[[], object]:
    """A call that classifies `data` in this process, as a worker process would."""
    classifier = _load()
    return lambda: classify(data, classifier=classifier, top_k=5, max_pixels=10**9)


def decode_comparison(path: Path, *, repeats: int = 5) -> dict[str, object]:
    """Full-resolution decode + preprocess against ours, and the top-1 class of each."""
    data = path.read_bytes()
    classifier = _load()

    def full() -> Image.Image:
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")

    def ours() -> Image.Image:
        return decode_image(data, target=classifier.card.input, max_pixels=10**9)

    figures: dict[str, object] = {"image": path.name}
    for name, decode in (("full", full), ("ours", ours)):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            batch = preprocess(decode(), classifier.card.input)
            times.append(time.perf_counter() - started)
        scores = softmax(classifier.scores(batch)[0])
        figures[f"{name}_ms"] = min(times) * 1000
        figures[f"{name}_top1"] = classifier.labels[int(scores.argmax())]
    figures["speedup"] = float(figures["full_ms"]) / float(figures["ours_ms"])  # type: ignore[arg-type]
    return figures

"""The benchmark's peer: BentoML serving the same ONNX file with the same decoding and
preprocessing as imgclf's workers (`worker.pipeline.classify`, so only the serving differs), on
BentoML's recommended CPU settings: one worker process per core, one inference thread each.

    bentoml serve scripts.bench.peer_service:Classifier --port 3000

(`uv run --group peer`; `scripts/bench/peer.py` starts it.) It answers `POST /api/v1/predict`
with a multipart `file`, as imgclf's synchronous route does; `POST /api/v1/predict_many` with
several `files`, one after another; and `POST /api/v1/predict_batched` with several `files`
through BentoML's adaptive batching (the requests that arrive together merged into one batch,
which goes through the model in one call), as its documentation recommends for throughput; its
latency budget is generous, since past it BentoML refuses requests (503) rather than batch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bentoml

from shared.settings import get_settings
from worker.model import load_named
from worker.pipeline import classify, classify_prepared, prepare

TOP_K = 5


@bentoml.service(workers="cpu_count", traffic={"timeout": 60})
class Classifier:
    def __init__(self) -> None:
        settings = get_settings()
        self.settings = settings
        self.classifier = load_named(
            settings.models_dir, settings.default_model_name(), threads=1, batch="on"
        )

    @bentoml.api(route="/api/v1/predict")
    def predict(self, file: Path) -> dict[str, Any]:
        return self._one(file)

    @bentoml.api(route="/api/v1/predict_many")
    def predict_many(self, files: list[Path]) -> list[dict[str, Any]]:
        return [self._one(file) for file in files]

    @bentoml.api(route="/api/v1/predict_batched", batchable=True, max_batch_size=64,
                 max_latency_ms=30_000)  # fmt: skip
    def predict_batched(self, files: list[Path]) -> list[dict[str, Any]]:
        max_pixels = self.settings.max_image_pixels
        spec = self.classifier.card.input
        prepared = [prepare(file.read_bytes(), spec=spec, max_pixels=max_pixels) for file in files]
        outcomes = classify_prepared(
            prepared, classifier=self.classifier, top_ks=[TOP_K] * len(prepared)
        )
        return [{"predictions": [p.model_dump() for p in o.predictions]} for o in outcomes]

    def _one(self, file: Path) -> dict[str, Any]:
        outcome = classify(
            file.read_bytes(),
            classifier=self.classifier,
            top_k=TOP_K,
            max_pixels=self.settings.max_image_pixels,
        )
        return {"predictions": [p.model_dump() for p in outcome.predictions]}

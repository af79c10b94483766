"""The seed's design, for comparison only: the model runs inside the request handler.

Modelled on the seed: one uvicorn process, an `async def` route that decodes, preprocesses and
runs inference inline (so the event loop is blocked meanwhile), full-resolution decoding.
"""

from __future__ import annotations

import io

from fastapi import FastAPI, UploadFile
from PIL import Image

from shared.settings import get_settings
from worker.images import preprocess
from worker.model import load_named
from worker.pipeline import softmax, top_predictions

_settings = get_settings()
_classifier = load_named(_settings.models_dir, _settings.default_model_name(), threads=2)
app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "OK"}


@app.post("/api/v1/predict")
async def predict(file: UploadFile) -> dict[str, list[dict[str, object]]]:
    image = Image.open(io.BytesIO(await file.read())).convert("RGB")
    scores = softmax(_classifier.scores(preprocess(image, _classifier.card.input))[0])
    top = top_predictions(scores, _classifier.labels, k=10)
    return {"predictions": [{"class_name": p.label, "confidence": p.probability} for p in top]}

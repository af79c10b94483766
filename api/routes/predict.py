"""The seed's synchronous routes, kept exactly: `/predict` and `/model-info`.

`/predict` goes through the same queue and workers as every job and waits for the outcome.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel

from api.deps import ModelDep, ServiceDep
from api.errors import error_responses
from api.upload_form import UploadRoute

router = APIRouter(tags=["seed-compatible"], route_class=UploadRoute)


class SeedPrediction(BaseModel):
    class_name: str
    confidence: float


class PredictResponse(BaseModel):
    predictions: list[SeedPrediction]


class ModelInfo(BaseModel):
    name: str
    model: str
    version: str
    description: str
    input_shape: list[int]
    output_shape: list[int]
    num_classes: int
    preprocessing: str
    sha256: str | None
    runtime: str | None
    execution_provider: str | None
    workers_online: int


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=error_responses(400, 413, 415, 504),
)
async def predict(
    file: Annotated[UploadFile, File(description="The image to classify")],
    service: ServiceDep,
    model: ModelDep,
) -> PredictResponse:
    """Classify one image and wait for the answer: the 10 best classes, highest first."""
    predictions = await service.predict(file, model=model)
    return PredictResponse(
        predictions=[
            SeedPrediction(class_name=p.label, confidence=p.probability) for p in predictions
        ]
    )


@router.get("/model-info", response_model=ModelInfo, responses=error_responses())
async def model_info(service: ServiceDep, model: ModelDep) -> ModelInfo:
    """A model (default: the default one) as the workers serve it; checksum and runtime come
    from a live worker serving it. `GET /api/v1/models` lists every model."""
    card = service.models[model].card
    live = await service.live_workers(model)
    first = live[0] if live else None
    served = [s for s in first.models if s.name == model] if first else []
    return ModelInfo(
        name=card.title,
        model=card.name,
        version=card.version,
        description=card.description,
        input_shape=list(card.input.shape()),
        output_shape=[1, card.output.classes],
        num_classes=card.output.classes,
        preprocessing=card.input.describe(),
        sha256=served[0].sha256 if served else (first.model_sha256 if first else None),
        runtime=first.runtime if first else None,
        execution_provider=first.execution_provider if first else None,
        workers_online=len(live),
    )

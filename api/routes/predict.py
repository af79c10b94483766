"""The seed's synchronous routes, kept exactly: `/predict` and `/model-info`.

`/predict` goes through the same queue and workers as every job and waits for the outcome.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel

from api.deps import ServiceDep
from api.errors import error_responses
from api.upload_form import UploadRoute
from shared.model_files import (
    INPUT_SHAPE,
    MODEL_DESCRIPTION,
    MODEL_NAME,
    OUTPUT_SHAPE,
    PREPROCESSING_DESCRIPTION,
)

router = APIRouter(tags=["seed-compatible"], route_class=UploadRoute)


class SeedPrediction(BaseModel):
    class_name: str
    confidence: float


class PredictResponse(BaseModel):
    predictions: list[SeedPrediction]


class ModelInfo(BaseModel):
    name: str
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
) -> PredictResponse:
    """Classify one image and wait for the answer: the 10 best classes, highest first."""
    predictions = await service.predict(file)
    return PredictResponse(
        predictions=[
            SeedPrediction(class_name=p.label, confidence=p.probability) for p in predictions
        ]
    )


@router.get("/model-info", response_model=ModelInfo, responses=error_responses())
async def model_info(service: ServiceDep) -> ModelInfo:
    """The model the workers serve; checksum and runtime come from a live worker."""
    live = await service.live_workers()
    first = live[0] if live else None
    return ModelInfo(
        name=MODEL_NAME,
        description=MODEL_DESCRIPTION,
        input_shape=list(INPUT_SHAPE),
        output_shape=list(OUTPUT_SHAPE),
        num_classes=OUTPUT_SHAPE[1],
        preprocessing=PREPROCESSING_DESCRIPTION,
        sha256=first.model_sha256 if first else None,
        runtime=first.runtime if first else None,
        execution_provider=first.execution_provider if first else None,
        workers_online=len(live),
    )

"""The seed's synchronous routes, kept exactly: `/predict` and `/model-info`.

`/predict` goes through the same queue and workers as every job and waits for the outcome.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api import metrics
from api.deps import AsyncStoreDep, EventsDep, QueueDep, RedisDep, SettingsDep, StoreDep
from api.errors import error_responses
from api.jobs_service import submit_and_wait
from shared import workers
from shared.errors import JobNotCancelableError, JobTimeoutError, error_from_code
from shared.model_files import (
    INPUT_SHAPE,
    MODEL_DESCRIPTION,
    MODEL_NAME,
    OUTPUT_SHAPE,
    PREPROCESSING_DESCRIPTION,
)
from shared.schemas import JobStatus

router = APIRouter(tags=["seed-compatible"])

PREDICT_TOP_K = 10


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
    store: StoreDep,
    async_store: AsyncStoreDep,
    queue: QueueDep,
    events: EventsDep,
    settings: SettingsDep,
) -> PredictResponse:
    """Classify one image and wait for the answer: the 10 best classes, highest first."""
    job = await submit_and_wait(
        file,
        wait_seconds=settings.predict_timeout_seconds,
        top_k=PREDICT_TOP_K,
        store=async_store,
        queue=queue,
        events=events,
        settings=settings,
    )
    metrics.observe_submission("predict", [job.size_bytes])
    if job.status is JobStatus.SUCCEEDED and job.result is not None:
        return PredictResponse(
            predictions=[
                SeedPrediction(class_name=p.label, confidence=p.probability)
                for p in job.result.predictions
            ]
        )
    if job.status is JobStatus.FAILED and job.error is not None:
        raise error_from_code(job.error.code, job.error.message)
    if job.status is JobStatus.QUEUED:
        # A worker may take it just now; its result is then still stored under the job id.
        with contextlib.suppress(JobNotCancelableError):
            await run_in_threadpool(store.cancel, job.job_id)
    raise JobTimeoutError(
        f"No worker answered within {settings.predict_timeout_seconds:g} s "
        f"(job {job.job_id} was {job.status.value}); check that workers are running"
    )


@router.get("/model-info", response_model=ModelInfo, responses=error_responses())
async def model_info(client: RedisDep) -> ModelInfo:
    """The model the workers serve; checksum and runtime come from a live worker."""
    live = await run_in_threadpool(workers.alive, client)
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

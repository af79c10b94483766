"""`/api/v1/jobs`: submit images, read and long-poll jobs, cancel queued ones."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api import metrics
from api.deps import AsyncStoreDep, EventsDep, QueueDep, SettingsDep, StoreDep
from api.errors import error_responses
from api.jobs_service import submit, submit_and_wait, wait_for_job
from shared.errors import InvalidRequestError
from shared.schemas import Job

router = APIRouter(prefix="/jobs", tags=["jobs"])

TopK = Annotated[
    int | None, Query(ge=1, le=1000, description="How many classes to return (default 5)")
]


Wait = Annotated[
    float, Query(ge=0, le=30, description="Long-poll: return once terminal, or after this")
]


class JobBatch(BaseModel):
    jobs: list[Job]


@router.post(
    "",
    status_code=202,
    response_model=Job,
    responses={
        200: {"model": Job, "description": "With `wait`: the job finished within it"},
        **error_responses(400, 413, 415),
    },
)
async def submit_job(
    request: Request,
    response: Response,
    file: Annotated[UploadFile, File(description="The image: JPEG, PNG, WebP, GIF, BMP or TIFF")],
    store: AsyncStoreDep,
    queue: QueueDep,
    events: EventsDep,
    settings: SettingsDep,
    top_k: TopK = None,
    wait: Wait = 0,
) -> Job:
    """Queue one image for classification; poll the `Location` for the result.

    With `wait`, the answer comes once the job is terminal (200, with its result or error) or
    when `wait` seconds have passed (202, still queued or running): one request where a job
    finishes quickly, and still a `Location` to poll where it does not.
    """
    top_k = top_k or settings.default_top_k
    if wait:
        job = await submit_and_wait(
            file,
            wait_seconds=wait,
            top_k=top_k,
            store=store,
            queue=queue,
            events=events,
            settings=settings,
        )
    else:
        (job,) = await submit([file], top_k=top_k, store=store, queue=queue, settings=settings)
    metrics.observe_submission("jobs", [job.size_bytes])
    # A path-absolute reference: cheaper than url_for's route search (or request.url's parsing),
    # and valid for Location.
    response.headers["Location"] = f"{request.scope['path'].rstrip('/')}/{job.job_id}"
    if job.status.terminal:
        response.status_code = 200
    return job


@router.post(
    "/batch", status_code=202, response_model=JobBatch, responses=error_responses(400, 413, 415)
)
async def submit_batch(
    files: Annotated[list[UploadFile], File(description="1 to MAX_BATCH_FILES images")],
    store: AsyncStoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    top_k: TopK = None,
) -> JobBatch:
    """Queue several images at once: all are accepted, or none (the error names the file)."""
    if not 1 <= len(files) <= settings.max_batch_files:
        raise InvalidRequestError(
            f"A batch holds 1 to {settings.max_batch_files} files; got {len(files)}"
        )
    jobs = await submit(
        files, top_k=top_k or settings.default_top_k, store=store, queue=queue, settings=settings
    )
    metrics.observe_submission("batch", [job.size_bytes for job in jobs])
    return JobBatch(jobs=jobs)


@router.get("/{job_id}", response_model=Job, responses=error_responses(404))
async def get_job(
    job_id: UUID,
    store: AsyncStoreDep,
    events: EventsDep,
    wait: Wait = 0,
) -> Job:
    """A job's status, and its result or error once it has finished."""
    if wait:
        return await wait_for_job(str(job_id), wait_seconds=wait, store=store, events=events)
    return await store.get(str(job_id))


@router.delete("/{job_id}", response_model=Job, responses=error_responses(404, 409))
async def cancel_job(job_id: UUID, store: StoreDep) -> Job:
    """Cancel a queued job; 409 once it runs or has finished."""
    return await run_in_threadpool(store.cancel, str(job_id))

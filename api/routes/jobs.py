"""`/api/v1/jobs`: submit images, read and long-poll jobs, cancel queued ones."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from pydantic import BaseModel

from api.deps import CallerDep, ServiceDep, SubmitOptionsDep, WaitDep
from api.errors import error_responses
from api.upload_form import BatchUploadRoute, UploadRoute
from shared.image_checks import FORMAT_NAMES
from shared.jobs.keys import MAX_LISTED_FAILURES
from shared.log_format import job_context
from shared.schemas import Job

router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=UploadRoute)
# The batch route's body may carry MAX_BATCH_FILES files' worth, the others one file's.
batch_router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=BatchUploadRoute)


class JobList(BaseModel):
    jobs: list[Job]


class JobBatch(JobList):
    """The jobs of one batch, in the order of its files."""


@router.post(
    "",
    status_code=202,
    response_model=Job,
    responses={
        200: {"model": Job, "description": "With `wait`: the job finished within it"},
        **error_responses(400, 409, 413, 415),
    },
)
async def submit_job(
    request: Request,
    response: Response,
    file: Annotated[UploadFile, File(description=f"The image: {FORMAT_NAMES}")],
    service: ServiceDep,
    options: SubmitOptionsDep,
) -> Job:
    """Queue one image for classification; poll the `Location` for the result.

    With `wait`, the answer comes once the job is terminal (200, with its result or error) or
    when `wait` seconds have passed (202, still queued or running): one request where a job
    finishes quickly, and still a `Location` to poll where it does not.
    """
    if options.wait:
        (job,) = await service.submit_and_wait([file], options=options, route="jobs")
    else:
        (job,) = await service.submit([file], options=options, route="jobs")
    # A path-absolute reference: cheaper than url_for's route search, and valid for Location.
    response.headers["Location"] = f"{request.scope['path'].rstrip('/')}/{job.job_id}"
    if job.status.terminal:
        response.status_code = 200
    return job


@batch_router.post(
    "/batch",
    status_code=202,
    response_model=JobBatch,
    responses={
        200: {"model": JobBatch, "description": "With `wait`: every job finished within it"},
        **error_responses(400, 409, 413, 415),
    },
)
async def submit_batch(
    response: Response,
    files: Annotated[list[UploadFile], File(description="1 to MAX_BATCH_FILES images")],
    service: ServiceDep,
    options: SubmitOptionsDep,
) -> JobBatch:
    """Queue several images at once: all are accepted, or none (the error names the file).

    With `wait`, the answer comes once every job is terminal (200, each with its result or
    error) or when `wait` seconds have passed (202, some still queued or running)."""
    if options.wait:
        jobs = await service.submit_and_wait(files, options=options, route="batch")
    else:
        jobs = await service.submit(files, options=options, route="batch")
    if all(job.status.terminal for job in jobs):
        response.status_code = 200
    return JobBatch(jobs=jobs)


@router.get("/{job_id}", response_model=Job, responses=error_responses(404))
async def get_job(job_id: UUID, service: ServiceDep, wait: WaitDep) -> Job:
    """A job's status, and its result or error once it has finished."""
    with job_context(str(job_id)):
        if wait:
            (job,) = await service.wait_for([str(job_id)], wait_seconds=wait)
            return job
        return await service.store.get(str(job_id))


@router.delete("/{job_id}", response_model=Job, responses=error_responses(404, 409))
async def cancel_job(job_id: UUID, service: ServiceDep) -> Job:
    """Cancel a queued job; 409 once it runs or has finished."""
    with job_context(str(job_id)):
        return await service.store.cancel(str(job_id))


@router.post(
    "/{job_id}/retry", status_code=202, response_model=Job, responses=error_responses(404, 409)
)
async def retry_job(
    job_id: UUID, request: Request, response: Response, service: ServiceDep, caller: CallerDep
) -> Job:
    """Queue a failed or canceled job's image again, as a new job whose `retry_of` names it."""
    with job_context(str(job_id)):
        job = await service.retry(str(job_id), owner=caller)
    response.headers["Location"] = f"{request.scope['path'].rsplit('/', 2)[0]}/{job.job_id}"
    return job


@router.get("", response_model=JobList, responses=error_responses(403))
async def list_jobs(
    service: ServiceDep,
    caller: CallerDep,
    status: Annotated[
        Literal["failed"], Query(description="Which jobs: `failed` (the ones that can be retried)")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_FAILURES)] = 50,
) -> JobList:
    """The caller's most recent failed jobs, newest first: under its own API key only, never
    another's (with keys off, only where JOB_LISTING_OPEN allows it). A job id stays a secret
    of whoever holds it: this list is the one way to find ids one was not given."""
    return JobList(jobs=await service.failures(owner=caller, limit=limit))

"""What the job routes do, apart from HTTP: enqueue checked uploads, wait for outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from celery import Celery
from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from api.events import JobEvents
from api.uploads import CheckedUpload, check_upload
from shared.errors import InvalidRequestError, QueueFullError, StoreUnavailableError
from shared.jobs import JobStore, new_job_id
from shared.queue import publish_job
from shared.schemas import Job
from shared.settings import Settings

log = logging.getLogger(__name__)

# Waiters re-read the job this often even without an event: a safety net, not the mechanism.
RECHECK_SECONDS = 2.0


def submit(
    files: list[UploadFile], *, top_k: int, store: JobStore, celery: Celery, settings: Settings
) -> list[Job]:
    """Check every file, then queue them all (or none); blocking, so call it in a threadpool.

    One thread hop per request: reading, the header checks and the Redis calls all happen here.
    """
    uploads = []
    for index, file in enumerate(files):
        try:
            uploads.append(
                check_upload(
                    file,
                    top_k=top_k,
                    max_bytes=settings.max_upload_bytes,
                    max_pixels=settings.max_image_pixels,
                )
            )
        except InvalidRequestError as exc:
            if len(files) > 1:
                exc.message = f"files[{index}] ({file.filename!r}): {exc.message}"
            raise
    return enqueue(uploads, store=store, celery=celery, settings=settings)


def enqueue(
    uploads: list[CheckedUpload], *, store: JobStore, celery: Celery, settings: Settings
) -> list[Job]:
    """Create a job per upload and publish its id; blocking, so call it in a threadpool.

    A job whose message could not be published is deleted again, so no job waits forever.
    """
    queued = store.queue_length(settings.queue_name)
    if queued + len(uploads) > settings.max_queue_length:
        raise QueueFullError(
            f"The queue is full ({queued} jobs waiting, limit {settings.max_queue_length}); "
            "retry later"
        )
    jobs = [store.create(upload.job, upload.data, job_id=new_job_id()) for upload in uploads]
    try:
        with celery.producer_or_acquire() as producer:
            for job in jobs:
                publish_job(celery, job.job_id, queue=settings.queue_name, producer=producer)
    except Exception as exc:  # kombu and redis raise many types when the broker is down
        log.warning("could not publish %d job(s): %r", len(jobs), exc)
        for job in jobs:
            _forget(store, job.job_id)
        raise StoreUnavailableError("The queue (Redis) is unavailable; retry shortly") from exc
    return jobs


async def wait_for_job(
    job_id: str, *, wait_seconds: float, store: JobStore, events: JobEvents
) -> Job:
    """The job as soon as it is terminal, or as it stands when `wait_seconds` have passed."""
    deadline = time.monotonic() + wait_seconds
    async with events.watch(job_id) as finished:
        while True:
            job = await run_in_threadpool(store.get, job_id)
            remaining = deadline - time.monotonic()
            if job.status.terminal or remaining <= 0:
                return job
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), min(remaining, RECHECK_SECONDS))


def _forget(store: JobStore, job_id: str) -> None:
    try:
        store.delete(job_id)
    except StoreUnavailableError:
        log.warning("job %s could not be removed after a failed publish", job_id)

"""What the job routes do, apart from HTTP: enqueue checked uploads, wait for outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import UploadFile

from api.events import JobEvents
from api.uploads import check_upload
from shared.errors import InvalidRequestError
from shared.jobs import JobReader, JobStore
from shared.queue import ClassifyQueue
from shared.schemas import Job
from shared.settings import Settings

# Waiters re-read the job this often even without an event: a safety net, not the mechanism.
RECHECK_SECONDS = 2.0


def submit(
    files: list[UploadFile],
    *,
    top_k: int,
    store: JobStore,
    queue: ClassifyQueue,
    settings: Settings,
) -> list[Job]:
    """Check every file, then queue them all (or none); blocking, so call it in a threadpool.

    One thread hop per request: reading, the header checks and the Redis call all happen here.
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
    return store.enqueue(
        [(upload.job, upload.data) for upload in uploads],
        queue=queue,
        max_queued=settings.max_queue_length,
    )


async def wait_for_job(
    job_id: str, *, wait_seconds: float, reader: JobReader, events: JobEvents
) -> Job:
    """The job as soon as it is terminal, or as it stands when `wait_seconds` have passed."""
    deadline = time.monotonic() + wait_seconds
    async with events.watch(job_id) as finished:
        while True:
            job = await reader.get(job_id)
            remaining = deadline - time.monotonic()
            if job.status.terminal or remaining <= 0:
                return job
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, RECHECK_SECONDS)):
                    await finished.wait()

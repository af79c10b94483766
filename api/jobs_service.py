"""What the job routes do, apart from HTTP: enqueue checked uploads, wait for outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from api.events import Finished, JobEvents
from api.upload_spool import disk_turn
from api.uploads import CheckedUpload, check_upload, read_upload
from shared.errors import InvalidRequestError
from shared.jobs import AsyncJobStore, new_job_id
from shared.queue import ClassifyQueue
from shared.schemas import Job
from shared.settings import Settings

# Waiters re-read the job this often even without an event: a safety net, not the mechanism.
RECHECK_SECONDS = 2.0


async def submit(
    files: list[UploadFile],
    *,
    top_k: int,
    store: AsyncJobStore,
    queue: ClassifyQueue,
    settings: Settings,
    job_ids: list[str] | None = None,
) -> list[Job]:
    """Check every file, then queue them all (or none), under `job_ids` if given.

    A single upload stays on the event loop: its header check is cheap (~20 us for a JPEG, at
    most ~2 ms for a 10 MB PNG), and a thread hop cost more than the rest of the work. A batch's
    checks go to a worker thread together, so 64 large PNGs cannot stall other requests.
    The files are closed once their bytes are in Redis (or refused): a request that goes on to
    wait for its job holds no upload memory meanwhile.
    """
    try:
        async with disk_turn(files):
            return await _check_and_enqueue(
                files, top_k=top_k, store=store, queue=queue, settings=settings, job_ids=job_ids
            )
    finally:
        for file in files:
            await file.close()


async def _check_and_enqueue(
    files: list[UploadFile],
    *,
    top_k: int,
    store: AsyncJobStore,
    queue: ClassifyQueue,
    settings: Settings,
    job_ids: list[str] | None,
) -> list[Job]:
    contents = []
    for index, file in enumerate(files):
        with _naming_the_file(files, index):
            contents.append(await read_upload(file, max_bytes=settings.max_upload_bytes))

    def check_all() -> list[CheckedUpload]:
        checked = []
        for index, (file, data) in enumerate(zip(files, contents, strict=True)):
            with _naming_the_file(files, index):
                checked.append(
                    check_upload(
                        data,
                        filename=file.filename,
                        top_k=top_k,
                        max_pixels=settings.max_image_pixels,
                    )
                )
        return checked

    uploads = check_all() if len(files) == 1 else await run_in_threadpool(check_all)
    return await store.enqueue(
        [(upload.job, upload.data) for upload in uploads],
        queue=queue,
        max_queued=settings.max_queue_length,
        job_ids=job_ids,
    )


@contextlib.contextmanager
def _naming_the_file(files: list[UploadFile], index: int) -> Iterator[None]:
    """In a batch, an error says which file it is about."""
    try:
        yield
    except InvalidRequestError as exc:
        if len(files) > 1:
            exc.message = f"files[{index}] ({files[index].filename!r}): {exc.message}"
        raise


async def submit_and_wait(
    file: UploadFile,
    *,
    wait_seconds: float,
    top_k: int,
    store: AsyncJobStore,
    queue: ClassifyQueue,
    events: JobEvents,
    settings: Settings,
) -> Job:
    """Queue one image, then the job as soon as it is terminal or when `wait_seconds` have
    passed. The watch is set before the job exists, so its end cannot slip by unseen and the
    new job need not be read back."""
    deadline = time.monotonic() + wait_seconds
    job_id = new_job_id()
    async with events.watch(job_id) as finished:
        (job,) = await submit(
            [file], top_k=top_k, store=store, queue=queue, settings=settings, job_ids=[job_id]
        )
        return await _until_terminal(job, finished, deadline=deadline, store=store)


async def wait_for_job(
    job_id: str, *, wait_seconds: float, store: AsyncJobStore, events: JobEvents
) -> Job:
    """The job as soon as it is terminal, or as it stands when `wait_seconds` have passed."""
    deadline = time.monotonic() + wait_seconds
    async with events.watch(job_id) as finished:
        job = await store.get(job_id)
        return await _until_terminal(job, finished, deadline=deadline, store=store)


async def _until_terminal(
    job: Job, finished: Finished, *, deadline: float, store: AsyncJobStore
) -> Job:
    while True:
        remaining = deadline - time.monotonic()
        if job.status.terminal or remaining <= 0:
            return job
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, RECHECK_SECONDS)):
                await finished.event.wait()
        job = finished.job or await store.get(job.job_id)

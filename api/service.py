"""`JobService`: everything the API does apart from HTTP, built once per app in its lifespan.

It owns the Redis clients, the job store, the queue's message format, the finish-event listener
and the upload budget and limits; routes unpack a request, call one method, and shape the answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from prometheus_client import generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api import metrics
from api.committer import Committer
from api.events import JobEvents, until_all_terminal
from api.security import encoded_keys
from api.submissions import SubmitOptions, check_callback, submission
from api.upload_form import BudgetedUpload, UploadLimits
from api.upload_spool import MemoryBudget, disk_turn
from api.uploads import check_uploads, upload_bytes
from shared import tracing, workers
from shared.errors import (
    ForbiddenError,
    InvalidParameterError,
    InvalidRequestError,
    JobNotCancelableError,
    JobNotRetryableError,
    JobTimeoutError,
    UnknownModelError,
    error_from_code,
)
from shared.jobs import (
    AsyncJobStore,
    Grouping,
    JobStore,
    QueueLimits,
    Replication,
    Request,
    new_job_id,
)
from shared.kombu_messages import classify_queues, collection_webhook_queue, webhook_queue
from shared.model_cards import read_cards
from shared.queue import make_celery
from shared.redis_client import check_eviction_policy, connect, connect_async
from shared.schemas import Job, JobStatus, NewJob, Prediction
from shared.settings import Settings

PREDICT_TOP_K = 10


class JobService:
    """Submit, wait for, read and cancel jobs; report the queue and the workers."""

    def __init__(self, settings: Settings) -> None:
        """Connections open lazily, so the API starts even while Redis is down."""
        self.settings = settings
        self.redis = connect(settings)  # blocking: scrapes and worker presence
        async_redis = connect_async(settings)
        celery = make_celery(settings)
        # The cards of the models the deployment serves, read once: an invalid one stops the
        # API at start-up (`ModelError`), never a request.
        self.models = read_cards(settings.models_dir, settings.model_names())
        self.default_model = settings.default_model_name()
        self.store = AsyncJobStore(
            async_redis,
            ttl_seconds=settings.job_ttl_seconds,
            replication=Replication(
                settings.replicas_to_wait_for(), settings.redis_wait_timeout_ms
            ),
            webhooks=webhook_queue(settings.webhook_queue, celery),
        )
        # A collection's own webhook, once it is done, on the same queue as the jobs'.
        self.collection_webhooks = collection_webhook_queue(settings.webhook_queue, celery)
        self.blocking_store = JobStore(self.redis, ttl_seconds=settings.job_ttl_seconds)
        self.queues = classify_queues(settings.queue_name, celery, list(self.models))
        self.committer = Committer(
            self.store,
            queues=self.queues,
            limits=QueueLimits(settings.max_queue_length, settings.max_queued_bytes),
            grouping=Grouping(settings.group_max_jobs, settings.group_max_bytes),
        )
        self.api_keys = encoded_keys(settings.accepted_api_keys())
        self.events = JobEvents(async_redis)
        self.upload_limits = UploadLimits(
            max_file_bytes=settings.max_upload_bytes,
            max_files=settings.max_batch_files,
            budget=MemoryBudget(settings.upload_memory_bytes),
            timeout_seconds=settings.upload_timeout_seconds,
        )
        self.registries = (
            metrics.metrics_registry(),
            metrics.queue_registry(self.blocking_store, list(self.models)),
        )

    async def start(self) -> None:
        """Check that Redis will keep the jobs it accepts, then listen for finish events."""
        refuse = self.settings.redis_eviction_check == "refuse"
        await run_in_threadpool(check_eviction_policy, self.redis, refuse=refuse)
        self.events.start()

    async def stop(self) -> None:
        await self.events.stop()
        self.redis.close()

    async def submit(
        self,
        files: Sequence[UploadFile],
        *,
        options: SubmitOptions,
        route: str,
        job_ids: list[str] | None = None,
    ) -> list[Job]:
        """Check every file, then queue them all (or none), under `job_ids` if given; `route`
        labels the submission in the metrics. With an Idempotency-Key seen before with the same
        request, the jobs it made then (other ids than `job_ids`).

        A small single upload's header check stays on the event loop (cheaper than a thread
        hop); larger uploads and a batch's checks go to a worker thread, so large PNGs cannot
        stall other requests. The files are closed once their bytes are in Redis (or refused): a
        request that goes on to wait for its job holds no upload memory meanwhile.
        """
        if not 1 <= len(files) <= self.settings.max_batch_files:
            raise InvalidRequestError(
                f"A batch holds 1 to {self.settings.max_batch_files} files; got {len(files)}"
            )
        spools = [file.spool for file in files if isinstance(file, BudgetedUpload)]
        try:
            async with disk_turn(spools):
                jobs = await self._check_and_enqueue(
                    files, options=options, route=route, job_ids=job_ids
                )
        finally:
            for file in files:
                await file.close()
        model = jobs[0].model if jobs else self.default_model
        metrics.observe_submission(route, model, [job.size_bytes for job in jobs])
        return jobs

    async def _check_and_enqueue(
        self,
        files: Sequence[UploadFile],
        *,
        options: SubmitOptions,
        route: str,
        job_ids: list[str] | None,
    ) -> list[Job]:
        if options.callback_url is not None:
            await check_callback(options.callback_url, self.settings)
        contents = [await upload_bytes(file) for file in files]
        top_k = options.top_k or self.settings.default_top_k

        with tracing.span("check uploads"):
            jobs = await check_uploads(
                files,
                contents,
                top_k=top_k,
                max_pixels=self.settings.max_image_pixels,
                check_seconds=self.settings.upload_check_timeout_seconds,
            )
        with tracing.span("enqueue") as span:
            request = submission(jobs, contents, options=options, route=route, job_ids=job_ids)
            queued = await self.committer.submit(request)
            span.set_attribute("imgclf.job_ids", [job.job_id for job in queued])
        return queued

    async def submit_and_wait(
        self, files: Sequence[UploadFile], *, options: SubmitOptions, route: str
    ) -> list[Job]:
        """Queue the images, then their jobs as soon as all are terminal or when
        `options.wait` seconds have passed. The watches are set before the jobs exist, so no end
        can slip by unseen and the new jobs need not be read back."""
        deadline = time.monotonic() + options.wait
        job_ids = [new_job_id() for _ in files]
        async with self.events.watch(job_ids) as watches:
            jobs = await self.submit(files, options=options, route=route, job_ids=job_ids)
            if [job.job_id for job in jobs] == job_ids:
                return await until_all_terminal(jobs, watches, self.store.get, deadline=deadline)
        # An Idempotency-Key's earlier jobs: wait for those instead.
        left = max(0.0, deadline - time.monotonic())
        return await self.wait_for([job.job_id for job in jobs], wait_seconds=left)

    async def retry(self, job_id: str, *, owner: str) -> Job:
        """A new job for a failed or canceled job's image, linked to it by `retry_of`."""
        job, image = await self.store.with_image(job_id)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELED):
            raise JobNotRetryableError(
                f"Job {job_id} is {job.status.value}; only failed or canceled jobs can be retried"
            )
        if image is None:
            raise JobNotRetryableError(f"Job {job_id}'s image is no longer kept; submit it again")
        self.checked_model(job.model)
        # A retry stands alone: its collection counted the job it retries, and keeps its line.
        fields = job.model_dump(include=set(NewJob.model_fields) - {"collection_id"})
        again = NewJob.model_validate({**fields, "retry_of": job_id})
        (made,) = await self.committer.submit(Request([(again, image)], owner=owner))
        metrics.observe_submission("retry", made.model, [made.size_bytes])
        return made

    async def failures(self, *, owner: str, limit: int) -> list[Job]:
        """The caller's most recent failed jobs; with API keys off only if JOB_LISTING_OPEN."""
        if not self.api_keys and not self.settings.job_listing_open:
            raise ForbiddenError(
                "Listing jobs shows each API key its own, and API keys are off "
                "(API_KEYS); JOB_LISTING_OPEN=true opens the list to every caller"
            )
        return await self.store.failures(owner, limit=limit)

    async def wait_for(self, job_ids: Sequence[str], *, wait_seconds: float) -> list[Job]:
        """The jobs as soon as all are terminal, or as they stand when `wait_seconds` have
        passed."""
        deadline = time.monotonic() + wait_seconds
        async with self.events.watch(job_ids) as watches:
            jobs = [await self.store.get(job_id) for job_id in job_ids]
            return await until_all_terminal(jobs, watches, self.store.get, deadline=deadline)

    async def predict(self, file: UploadFile, *, model: str) -> list[Prediction]:
        """The seed's synchronous call: `model`'s 10 best classes, or the job's error, or
        `JobTimeoutError` (the job canceled if no worker took it) after PREDICT_TIMEOUT_SECONDS."""
        timeout = self.settings.predict_timeout_seconds
        options = SubmitOptions(top_k=PREDICT_TOP_K, wait=timeout, model=model)
        (job,) = await self.submit_and_wait([file], options=options, route="predict")
        if job.status is JobStatus.SUCCEEDED and job.result is not None:
            return job.result.predictions
        if job.status is JobStatus.FAILED and job.error is not None:
            raise error_from_code(job.error.code, job.error.message)
        if job.status is JobStatus.QUEUED:
            # A worker may take it just now; its result is then still stored under the job id.
            with contextlib.suppress(JobNotCancelableError):
                await self.store.cancel(job.job_id)
        raise JobTimeoutError(
            f"No worker answered within {timeout:g} s (job {job.job_id} was "
            f"{job.status.value}); check that workers are running"
        )

    def checked_wait(self, seconds: float) -> float:
        """A client's `wait`, refused past MAX_WAIT_SECONDS."""
        if seconds > self.settings.max_wait_seconds:
            raise InvalidParameterError(
                f"Invalid request: wait: Input should be less than or equal to "
                f"{self.settings.max_wait_seconds:g}"
            )
        return seconds

    def checked_model(self, name: str | None) -> str:
        """A client's `model` (none: the default), refused unless the deployment serves it."""
        if name is None:
            return self.default_model
        if name not in self.models:
            raise UnknownModelError(
                f"Unknown model {name!r}; this deployment serves {', '.join(self.models)}"
            )
        return name

    async def live_workers(self, model: str | None = None) -> list[workers.WorkerInfo]:
        """Live worker processes; with `model`, those serving it."""
        live = await run_in_threadpool(workers.alive, self.redis)
        return live if model is None else [w for w in live if workers.serves(w, model)]

    def metrics_exposition(self) -> bytes:
        """Prometheus text: process metrics, then live queue figures from Redis."""
        return b"".join(generate_latest(registry) for registry in self.registries)

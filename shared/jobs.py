"""The job store: one Redis hash per job, the image beside it until a worker has used it.

Jobs live under their own keys rather than in Celery's result backend so that an unknown id is a
clean 404, every job has a status of its own, and records expire after `JOB_TTL_SECONDS`. Status
changes run as Lua scripts, so a claim, a finish and a cancel never interleave, and a job that is
already terminal is never overwritten (a task redelivered after a crash cannot corrupt it).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio
from redis.client import Pipeline

from shared import job_scripts
from shared.errors import (
    ImgclfError,
    JobNotCancelableError,
    JobNotFoundError,
    QueueFullError,
    WorkerLostError,
)
from shared.queue import ClassifyQueue
from shared.redis_client import store_errors, unavailable_as_store_error
from shared.schemas import ErrorBody, Job, JobResult, JobStatus

KEY_PREFIX = "imgclf"
EVENTS_CHANNEL = f"{KEY_PREFIX}:events"
STATS_KEY = f"{KEY_PREFIX}:stats:finished"
RUNNING_KEY = f"{KEY_PREFIX}:running"
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker has taken: what it needs to run it."""

    job_id: str
    created_at: float
    started_at: float
    top_k: int
    image: bytes


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the API knows about an upload when it creates a job."""

    filename: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    top_k: int


def job_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:job:{job_id}"


def image_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:image:{job_id}"


def new_job_id() -> str:
    return str(uuid.uuid4())


class JobStore:
    """Create, read and move jobs through their states in Redis."""

    def __init__(
        self, client: redis.Redis, *, ttl_seconds: int, max_attempts: int = DEFAULT_MAX_ATTEMPTS
    ) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._max_attempts = max_attempts
        self._enqueue = client.register_script(job_scripts.ENQUEUE)
        self._claim = client.register_script(job_scripts.CLAIM)
        self._finish = client.register_script(job_scripts.FINISH)
        self._cancel = client.register_script(job_scripts.CANCEL)
        self._requeue = client.register_script(job_scripts.REQUEUE)

    @store_errors
    def enqueue(
        self, uploads: Sequence[tuple[NewJob, bytes]], *, queue: ClassifyQueue, max_queued: int
    ) -> list[Job]:
        """Store a queued job per (job, image) and push its queue message, all in one atomic
        step: every job is queued, or none is (`QueueFullError` past `max_queued` waiting)."""
        submission = _Submission.of(uploads, queue=queue, max_queued=max_queued, ttl=self._ttl)
        *_, reply = self._atomically(lambda pipe: submission.queue_on(pipe, self._enqueue.sha))
        return submission.outcome(reply)

    @store_errors
    def get(self, job_id: str) -> Job:
        """The job, or `JobNotFoundError` for an unknown or expired id."""
        raw: dict[bytes, bytes] = self._redis.hgetall(job_key(job_id))  # type: ignore[assignment]
        return _stored_job(job_id, raw)

    @store_errors
    def claim(self, job_id: str, *, worker_id: str = "") -> Claim | None:
        """Mark the job running in `worker_id`; None when there is nothing to run.

        Nothing to run: canceled, finished or expired, or started `max_attempts` times already by
        processes that died (a poison image must not kill workers forever: it fails instead).
        """
        now = time.time()

        def commands(pipe: Pipeline) -> None:
            keys = [job_key(job_id), RUNNING_KEY]
            pipe.evalsha(
                self._claim.sha, 2, *keys, repr(now), job_id, worker_id, self._max_attempts
            )
            pipe.get(image_key(job_id))

        reply, image = self._atomically(commands)
        if reply[0] == b"exhausted":
            self.fail(
                job_id,
                WorkerLostError(
                    f"The worker processing this image died {self._max_attempts} times; giving up"
                ),
            )
            return None
        if reply[0] != b"run":
            return None
        _, created_at, top_k = reply
        return Claim(job_id, float(created_at), now, int(top_k), image or b"")

    def succeed(self, job_id: str, result: JobResult) -> bool:
        return self._end(job_id, JobStatus.SUCCEEDED, "result", result.model_dump_json())

    def fail(self, job_id: str, error: ImgclfError) -> bool:
        body = ErrorBody(code=error.code, message=error.message)
        return self._end(job_id, JobStatus.FAILED, "error", body.model_dump_json())

    @store_errors
    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job; `JobNotCancelableError` once it runs or has finished."""
        outcome = self._cancel(
            keys=[job_key(job_id), image_key(job_id), STATS_KEY],
            args=[repr(time.time()), EVENTS_CHANNEL, job_id],
        ).decode()
        if outcome == "missing":
            raise JobNotFoundError(f"Job {job_id} not found (unknown id, or expired)")
        if outcome != "ok":
            raise JobNotCancelableError(
                f"Job {job_id} is {outcome}; only queued jobs can be canceled"
            )
        return self.get(job_id)

    @store_errors
    def queue_length(self, queue_name: str) -> int:
        return int(self._redis.llen(queue_name))

    @store_errors
    def running_jobs(self) -> dict[str, str]:
        """Running job id -> the worker process that claimed it."""
        members: set[bytes] = self._redis.smembers(RUNNING_KEY)  # type: ignore[assignment]
        ids = sorted(member.decode() for member in members)
        with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(job_key(job_id), "worker")
            owners = pipe.execute()
        return {job_id: (owner or b"").decode() for job_id, owner in zip(ids, owners, strict=True)}

    @store_errors
    def requeue_orphan(self, job_id: str, *, worker_id: str, queue: ClassifyQueue) -> bool:
        """Put a job back to 'queued', with a new message on `queue`, if `worker_id` still
        holds it; False when another process has it now or it has finished."""
        return bool(
            self._requeue(
                keys=[job_key(job_id), RUNNING_KEY, queue.name],
                args=[worker_id, job_id, queue.message(job_id)],
            )
        )

    @store_errors
    def running_count(self) -> int:
        """Jobs a worker has claimed and not yet finished."""
        return int(self._redis.scard(RUNNING_KEY))

    @store_errors
    def finished_counts(self) -> dict[str, int]:
        """Jobs that reached each terminal status since Redis was set up (cluster-wide)."""
        raw: dict[bytes, bytes] = self._redis.hgetall(STATS_KEY)  # type: ignore[assignment]
        return {k.decode(): int(v) for k, v in raw.items()}

    def _atomically(self, commands: Callable[[Pipeline], None]) -> list[Any]:
        """Run what `commands` queues as one MULTI/EXEC transaction, in one round trip.

        Scripts go by SHA without redis-py's SCRIPT EXISTS check, which costs a round trip per
        pipeline; if Redis lost them (restarted), they are loaded and the transaction runs again.
        """
        for attempt in range(2):
            with self._redis.pipeline(transaction=True) as pipe:
                commands(pipe)
                try:
                    return pipe.execute()
                except redis.exceptions.NoScriptError:
                    if attempt:
                        raise
            for script in (self._enqueue, self._claim):
                self._redis.script_load(script.script)
        raise AssertionError("unreachable")

    @store_errors
    def _end(self, job_id: str, status: JobStatus, field: str, payload: str) -> bool:
        """Record a terminal state once; False if the job was already terminal or is gone."""
        done = self._finish(
            keys=[job_key(job_id), image_key(job_id), STATS_KEY, RUNNING_KEY],
            args=[status.value, field, payload, repr(time.time()), EVENTS_CHANNEL, job_id],
        )
        return bool(done)


class AsyncJobStore:
    """The job store's submissions and reads for code on an event loop: the API's requests
    create and read jobs without a thread hop (one cost ~0.25 ms of CPU per upload)."""

    def __init__(self, client: redis.asyncio.Redis, *, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._enqueue = client.register_script(job_scripts.ENQUEUE)

    async def enqueue(
        self,
        uploads: Sequence[tuple[NewJob, bytes]],
        *,
        queue: ClassifyQueue,
        max_queued: int,
        job_ids: Sequence[str] | None = None,
    ) -> list[Job]:
        """`JobStore.enqueue`, awaited; `job_ids` (from `new_job_id`) when the caller needs the
        ids before the jobs exist."""
        submission = _Submission.of(
            uploads, queue=queue, max_queued=max_queued, ttl=self._ttl, job_ids=job_ids
        )
        with unavailable_as_store_error():
            for attempt in range(2):
                async with self._redis.pipeline(transaction=True) as pipe:
                    submission.queue_on(pipe, self._enqueue.sha)
                    try:
                        *_, reply = await pipe.execute()
                        return submission.outcome(reply)
                    except redis.exceptions.NoScriptError:
                        if attempt:
                            raise
                await self._redis.script_load(self._enqueue.script)
        raise AssertionError("unreachable")

    async def get(self, job_id: str) -> Job:
        """The job, or `JobNotFoundError` for an unknown or expired id."""
        with unavailable_as_store_error():
            raw: dict[bytes, bytes] = await self._redis.hgetall(job_key(job_id))  # type: ignore[assignment]
        return _stored_job(job_id, raw)


@dataclass(frozen=True, slots=True)
class _Submission:
    """One enqueue transaction, the same for the blocking and the asyncio store."""

    jobs: list[Job]
    images: list[tuple[str, bytes]]
    keys: list[str]
    args: list[str]
    ttl: int
    max_queued: int

    @classmethod
    def of(
        cls,
        uploads: Sequence[tuple[NewJob, bytes]],
        *,
        queue: ClassifyQueue,
        max_queued: int,
        ttl: int,
        job_ids: Sequence[str] | None = None,
    ) -> _Submission:
        now = repr(time.time())
        fields = [_queued_fields(job, created_at=now) for job, _ in uploads]
        ids = job_ids if job_ids is not None else [new_job_id() for _ in uploads]
        jobs = [_to_job(job_id, job_fields) for job_id, job_fields in zip(ids, fields, strict=True)]
        # Every job has the same fields, so the script reads them in strides of one width.
        width = 2 * len(fields[0]) if fields else 0
        keys, args = [queue.name], [str(max_queued), str(ttl), str(width)]
        for job, job_fields in zip(jobs, fields, strict=True):
            keys += [job_key(job.job_id), image_key(job.job_id)]
            args += [queue.message(job.job_id), *itertools.chain(*job_fields.items())]
        images = [
            (image_key(job.job_id), image) for job, (_, image) in zip(jobs, uploads, strict=True)
        ]
        return cls(jobs, images, keys, args, ttl, max_queued)

    def queue_on(self, pipe: Pipeline | redis.asyncio.client.Pipeline, enqueue_sha: str) -> None:
        """Queue the images' SETs, then the enqueue script, on a MULTI pipeline."""
        for key, image in self.images:
            pipe.set(key, image, ex=self.ttl)
        pipe.evalsha(enqueue_sha, len(self.keys), *self.keys, *self.args)

    def outcome(self, reply: list[Any]) -> list[Job]:
        """The jobs created, or `QueueFullError` when the script refused them."""
        accepted, queued = reply
        if not accepted:
            raise QueueFullError(
                f"The queue is full ({queued} jobs waiting, limit {self.max_queued}); retry later"
            )
        return self.jobs


def announced_job(message: str) -> tuple[str, Job | None]:
    """The job id of a message on `EVENTS_CHANNEL`, and the job as it ended, when the message
    carries it (a bare id, sent for a job too large to announce or by an older worker, carries
    nothing: read the job instead)."""
    job_id, _, state = message.partition(" ")
    if not state:
        return job_id, None
    try:
        return job_id, _to_job(job_id, json.loads(state))
    except (ValueError, KeyError, TypeError):
        return job_id, None


def _stored_job(job_id: str, raw: dict[bytes, bytes]) -> Job:
    if not raw:
        raise JobNotFoundError(f"Job {job_id} not found (unknown id, or expired)")
    return _to_job(job_id, {k.decode(): v.decode() for k, v in raw.items()})


def _queued_fields(job: NewJob, *, created_at: str) -> dict[str, str]:
    fields = {k: str(v) for k, v in asdict(job).items()}
    return {"status": JobStatus.QUEUED.value, "created_at": created_at, "attempts": "0", **fields}


def _to_job(job_id: str, fields: dict[str, str]) -> Job:
    return Job(
        job_id=job_id,
        status=JobStatus(fields["status"]),
        created_at=_timestamp(fields["created_at"]),
        started_at=_timestamp(fields.get("started_at")),
        finished_at=_timestamp(fields.get("finished_at")),
        filename=fields["filename"],
        content_type=fields["content_type"],
        size_bytes=int(fields["size_bytes"]),
        width=int(fields["width"]),
        height=int(fields["height"]),
        top_k=int(fields["top_k"]),
        result=JobResult.model_validate_json(fields["result"]) if "result" in fields else None,
        error=ErrorBody.model_validate(json.loads(fields["error"])) if "error" in fields else None,
    )


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), tz=UTC) if value else None

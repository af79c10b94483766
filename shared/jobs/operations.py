"""The job store's operations as I/O-free generators: each yields the Redis round trips it needs
(`Step`) and receives their replies; `shared.jobs.runners` sends them, blocking or on asyncio.

Writing the logic once here keeps the two runners to a loop each, the way httpx writes its sync
and async clients as thin twins over one base.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    ImgclfError,
    JobNotCancelableError,
    JobNotFoundError,
    QueueFullError,
    StoreUnavailableError,
    WorkerLostError,
)
from shared.jobs import keys, record, scripts
from shared.jobs.steps import Operation, send
from shared.kombu_messages import UNACKED_KEY, ClassifyQueue
from shared.schemas import ErrorBody, Job, JobResult, JobStatus, NewJob


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker has taken: what it needs to run it."""

    job_id: str
    created_at: float
    started_at: float
    top_k: int
    image: bytes


def not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"Job {job_id} not found (unknown id, or expired)")


def get(job_id: str) -> Operation[Job]:
    """The job, or `JobNotFoundError` for an unknown or expired id."""
    (raw,) = yield from send(("HGETALL", keys.job_key(job_id)))
    if not raw:
        raise not_found(job_id)
    return record.job_from_fields(job_id, record.decoded(raw))


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How much may wait: jobs (MAX_QUEUE_LENGTH) and bytes of their images (MAX_QUEUED_BYTES)."""

    jobs: int
    image_bytes: int = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Replication:
    """How many replicas must hold new jobs (Redis WAIT) before they count as accepted."""

    replicas: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A submit's Idempotency-Key: where its record lives (`keys.idempotency_key`) and what the
    request was (a digest of its images and options); `pending` until replicas hold the jobs."""

    record: str
    fingerprint: str
    pending: bool = False


@dataclass(frozen=True, slots=True)
class Submission:
    """Who the new jobs are: their ids (when the caller needs them before they exist) and the
    request's Idempotency-Key, if it sent one."""

    job_ids: Sequence[str] | None = None
    idempotency: Idempotency | None = None


NO_SUBMISSION = Submission()


def enqueue(
    uploads: Sequence[tuple[NewJob, bytes]],
    *,
    queue: ClassifyQueue,
    limits: QueueLimits,
    ttl: int,
    submission: Submission = NO_SUBMISSION,
) -> Operation[list[Job]]:
    """Store a queued job per (job, image) and push its queue message, all in one transaction:
    every job is queued, or none is (`QueueFullError` past either limit). For an Idempotency-Key
    seen before: the jobs it made (other ids than `submission.job_ids`), or
    `IdempotencyKeyReusedError` / `IdempotencyInProgressError`."""
    now = time.time()
    job_ids, idempotency = submission.job_ids, submission.idempotency
    ids = list(job_ids) if job_ids is not None else [keys.new_job_id() for _ in uploads]
    fields = [record.queued_fields(job, created_at=now) for job, _ in uploads]
    # Every job has the same fields, so the script reads them in strides of one width.
    width = 2 * len(fields[0]) if fields else 0
    idem_record = idempotency.record if idempotency else keys.NO_IDEMPOTENCY_KEY
    script_keys = [queue.name, *keys.QUEUED_BOOKKEEPING, idem_record]
    args = [str(limits.jobs), str(limits.image_bytes), str(ttl), str(width)]
    args += (
        [idempotency.fingerprint, "pending" if idempotency.pending else "done"]
        if idempotency
        else ["", ""]
    )
    for job_id, job_fields, (_, image) in zip(ids, fields, uploads, strict=True):
        script_keys += [keys.job_key(job_id), keys.image_key(job_id)]
        args += [queue.message(job_id), job_id, str(len(image))]
        args += itertools.chain(*job_fields.items())
    images = [
        ("SET", keys.image_key(job_id), image, "EX", ttl)
        for job_id, (_, image) in zip(ids, uploads, strict=True)
    ]
    *_, (accepted, queued, *over) = yield from send(
        *images, scripts.ENQUEUE.call(script_keys, args), atomic=True
    )
    if accepted >= 2:
        return (yield from _seen_before(accepted, queued))
    if not accepted and over == [b"bytes"]:
        raise QueueFullError(
            f"The queue is full ({queued} bytes of images waiting, limit {limits.image_bytes}, "
            "MAX_QUEUED_BYTES); retry later"
        )
    if not accepted:
        raise QueueFullError(
            f"The queue is full ({queued} jobs waiting, limit {limits.jobs}); retry later"
        )
    return [record.job_from_fields(i, f) for i, f in zip(ids, fields, strict=True)]


def _seen_before(answer: int, detail: bytes) -> Operation[list[Job]]:
    if detail == b"reused":
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was used with another request (other images or options); "
            "use a new key for a new request"
        )
    if detail == b"pending":
        raise IdempotencyInProgressError(
            "A request with this Idempotency-Key is still being accepted; retry shortly"
        )
    made = []
    for job_id in detail.decode().split(","):
        made.append((yield from get(job_id)))
    return made


def settle_idempotency(idempotency: Idempotency, *, accepted: bool) -> Operation[None]:
    """After `replicated_or_withdrawn`: the key's record becomes final, or goes with its jobs."""
    if accepted:
        yield from send(("HSET", idempotency.record, "state", "done"))
    else:
        yield from send(("DEL", idempotency.record))


def replicated_or_withdrawn(
    job_ids: Sequence[str], queue: ClassifyQueue, replication: Replication
) -> Operation[None]:
    """After `enqueue`: wait until `replication.replicas` replicas hold the new jobs, or take
    them back and fail with `StoreUnavailableError`, since a failover could otherwise lose jobs
    that were answered 202."""
    (copies,) = yield from send(("WAIT", replication.replicas, replication.timeout_ms))
    if int(copies) >= replication.replicas:
        return
    yield from send(
        *(
            scripts.WITHDRAW.call(
                [
                    keys.job_key(job_id),
                    keys.image_key(job_id),
                    queue.name,
                    *keys.QUEUED_BOOKKEEPING,
                ],
                [job_id, queue.message(job_id)],
            )
            for job_id in job_ids
        )
    )
    raise StoreUnavailableError(
        f"The job store (Redis) could not copy the job to {replication.replicas} replica(s) "
        f"within {replication.timeout_ms} ms (REDIS_WAIT_REPLICAS); nothing was queued, retry "
        "shortly"
    )


def claim(
    job_id: str, *, worker_id: str, max_attempts: int, takeover: bool = True
) -> Operation[Claim | None]:
    """Mark the job running in `worker_id`; None when there is nothing to run.

    Nothing to run: canceled, finished or expired; running in another live process; or started
    `max_attempts` times already by processes that died (a poison image must not kill workers
    forever: it fails instead). Without `takeover`, a job another process holds is never run.
    """
    now = time.time()
    script_keys = [
        keys.job_key(job_id),
        keys.RUNNING_KEY,
        keys.WORKERS_KEY,
        keys.CLAIM_WATERMARK_KEY,
        *keys.QUEUED_BOOKKEEPING,
    ]
    reply, image = yield from send(
        scripts.CLAIM.call(
            script_keys, [repr(now), job_id, worker_id, max_attempts, int(takeover)]
        ),
        ("GET", keys.image_key(job_id)),
        atomic=True,
    )
    if reply[0] == b"exhausted":
        message = f"The worker processing this image died {max_attempts} times; giving up"
        yield from fail(job_id, WorkerLostError(message))
        return None
    if reply[0] != b"run":
        return None
    _, created_at, top_k = reply
    return Claim(job_id, float(created_at), now, int(top_k), image or b"")


def succeed(
    job_id: str, result: JobResult, replication: Replication | None = None
) -> Operation[bool]:
    return _end(job_id, JobStatus.SUCCEEDED, "result", result.model_dump_json(), replication)


def fail(
    job_id: str, error: ImgclfError, replication: Replication | None = None
) -> Operation[bool]:
    body = ErrorBody(code=error.code, message=error.message)
    return _end(job_id, JobStatus.FAILED, "error", body.model_dump_json(), replication)


def _end(
    job_id: str,
    status: JobStatus,
    field: str,
    payload: str,
    replication: Replication | None,
) -> Operation[bool]:
    """Record a terminal state once; False if the job was already terminal or is gone.

    With `replication`, it waits for the replicas too, but only so that a master that dies
    before a replica has the outcome fails the call (a lost connection), and the caller writes
    the outcome again to the new master; a replica merely slow to answer is not worth stalling
    the worker for, so WAIT's count is not checked.
    """
    script_keys = [
        keys.job_key(job_id),
        keys.image_key(job_id),
        keys.STATS_KEY,
        keys.RUNNING_KEY,
        *keys.QUEUED_BOOKKEEPING,
    ]
    args = [status.value, field, payload, repr(time.time()), keys.EVENTS_CHANNEL, job_id]
    (done,) = yield from send(scripts.FINISH.call(script_keys, args))
    if replication is not None and replication.replicas > 0:
        yield from send(("WAIT", replication.replicas, replication.timeout_ms))
    return bool(done)


def cancel(job_id: str) -> Operation[Job]:
    """Cancel a queued job; `JobNotCancelableError` once it runs or has finished."""
    script_keys = [
        keys.job_key(job_id),
        keys.image_key(job_id),
        keys.STATS_KEY,
        *keys.QUEUED_BOOKKEEPING,
    ]
    args = [repr(time.time()), keys.EVENTS_CHANNEL, job_id]
    (outcome,) = yield from send(scripts.CANCEL.call(script_keys, args))
    if outcome == b"missing":
        raise not_found(job_id)
    if outcome != b"ok":
        raise JobNotCancelableError(
            f"Job {job_id} is {outcome.decode()}; only queued jobs can be canceled"
        )
    return (yield from get(job_id))


def queued_bytes() -> Operation[int]:
    """Bytes of the images of queued jobs (MAX_QUEUED_BYTES counts them)."""
    (count,) = yield from send(("GET", keys.QUEUED_BYTES_KEY))
    return int(count or 0)


def queue_length(queue_name: str) -> Operation[int]:
    (length,) = yield from send(("LLEN", queue_name))
    return int(length)


def running_count() -> Operation[int]:
    """Jobs a worker has claimed and not yet finished."""
    (count,) = yield from send(("SCARD", keys.RUNNING_KEY))
    return int(count)


def finished_counts() -> Operation[dict[str, int]]:
    """Jobs that reached each terminal status since Redis was set up (cluster-wide)."""
    (raw,) = yield from send(("HGETALL", keys.STATS_KEY))
    return {k.decode(): int(v) for k, v in raw.items()}


def running_jobs() -> Operation[dict[str, str]]:
    """Running job id -> the worker process that claimed it."""
    (members,) = yield from send(("SMEMBERS", keys.RUNNING_KEY))
    ids = sorted(member.decode() for member in members)
    if not ids:
        return {}
    owners = yield from send(*(("HGET", keys.job_key(job_id), "worker") for job_id in ids))
    return {job_id: (owner or b"").decode() for job_id, owner in zip(ids, owners, strict=True)}


def requeue_orphan(
    job_id: str, *, worker_id: str, queue: ClassifyQueue, max_running_ms: int = 0
) -> Operation[int]:
    """Put a job back to 'queued', with a new message on `queue`, if `worker_id` still holds it
    and its heartbeat has expired (1), or it has run longer than `max_running_ms` (2, when not
    0); 0 when another process has it now, it is alive and in time, or it has finished."""
    script_keys = [
        keys.job_key(job_id),
        keys.RUNNING_KEY,
        queue.name,
        keys.WORKERS_KEY,
        *keys.QUEUED_BOOKKEEPING,
    ]
    args = [worker_id, job_id, queue.message(job_id), max_running_ms]
    (outcome,) = yield from send(scripts.REQUEUE.call(script_keys, args))
    return int(outcome)


def lost_messages(queue: ClassifyQueue, *, grace_ms: int, limit: int) -> Operation[list[str]]:
    """Queued jobs whose queue message is gone (see `scripts.RECONCILE`), at most `limit`."""
    script_keys = [keys.QUEUED_KEY, keys.CLAIM_WATERMARK_KEY, queue.name, UNACKED_KEY]
    (ids,) = yield from send(scripts.RECONCILE.call(script_keys, [grace_ms, limit]))
    return [job_id.decode() for job_id in ids]


def republish(job_id: str, *, queue: ClassifyQueue) -> Operation[bool]:
    """A new queue message for a queued job that has none; False when it no longer needs one."""
    script_keys = [keys.job_key(job_id), queue.name, UNACKED_KEY, *keys.QUEUED_BOOKKEEPING]
    (published,) = yield from send(
        scripts.REPUBLISH.call(script_keys, [job_id, queue.message(job_id)])
    )
    return bool(published)

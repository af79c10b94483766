"""The job store's intake as I/O-free operations (see `shared.jobs.operations`): queuing jobs,
all or none, with their Idempotency-Key, and making sure replicas hold them before a 202."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    QueueFullError,
    StoreUnavailableError,
)
from shared.jobs import keys, record, scripts
from shared.jobs.operations import Replication, not_found, read_jobs
from shared.jobs.steps import Operation, send
from shared.kombu_messages import ClassifyQueue
from shared.priorities import DEFAULT_PRIORITY
from shared.schemas import Job, NewJob


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How much may wait: jobs (MAX_QUEUE_LENGTH) and bytes of their images (MAX_QUEUED_BYTES)."""

    jobs: int
    image_bytes: int = 2**63 - 1


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
    # Whose jobs they are: a digest of the caller's API key ('' with keys off).
    owner: str = ""


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
    job_ids = submission.job_ids
    ids = list(job_ids) if job_ids is not None else [keys.new_job_id() for _ in uploads]
    now = time.time()
    fields = [
        record.queued_fields(job, created_at=now, owner=submission.owner) for job, _ in uploads
    ]
    # Every job has the same fields, so the script reads them in strides of one width.
    width = 2 * len(fields[0]) if fields else 0
    script_keys, args = _enqueue_header(queue, limits, ttl, width, submission.idempotency)
    # A submission's jobs share one priority, whose queue is `queue`.
    args.append(uploads[0][0].priority if uploads else DEFAULT_PRIORITY)
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
        return (yield from _seen_before(queued))
    if not accepted:
        raise _queue_full(queued, by_bytes=over == [b"bytes"], limits=limits)
    return [record.job_from_fields(i, f) for i, f in zip(ids, fields, strict=True)]


def _enqueue_header(
    queue: ClassifyQueue, limits: QueueLimits, ttl: int, width: int, idem: Idempotency | None
) -> tuple[list[str], list[str]]:
    """ENQUEUE's keys, and its arguments before the priority and the jobs' own."""
    idem_record = idem.record if idem else keys.NO_IDEMPOTENCY_KEY
    script_keys = [queue.name, *keys.QUEUED_BOOKKEEPING, idem_record]
    args = [str(limits.jobs), str(limits.image_bytes), str(ttl), str(width)]
    if idem:
        args += [idem.fingerprint, "pending" if idem.pending else "done"]
    else:
        args += ["", ""]
    return script_keys, args


def _queue_full(queued: int, *, by_bytes: bool, limits: QueueLimits) -> QueueFullError:
    if by_bytes:
        return QueueFullError(
            f"The queue is full ({queued} bytes of images waiting, limit {limits.image_bytes}, "
            "MAX_QUEUED_BYTES); retry later"
        )
    return QueueFullError(
        f"The queue is full ({queued} jobs waiting, limit {limits.jobs}); retry later"
    )


def _seen_before(detail: bytes) -> Operation[list[Job]]:
    if detail == b"reused":
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was used with another request (other images or options); "
            "use a new key for a new request"
        )
    if detail == b"pending":
        raise IdempotencyInProgressError(
            "A request with this Idempotency-Key is still being accepted; retry shortly"
        )
    ids = detail.decode().split(",")
    made = yield from read_jobs(ids)
    for job_id, job in zip(ids, made, strict=True):
        if job is None:
            raise not_found(job_id)
    return [job for job in made if job is not None]


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

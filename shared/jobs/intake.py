"""The job store's intake as I/O-free operations (see `shared.jobs.operations`): queuing the jobs
of one or more requests in one transaction, each request all or none with its Idempotency-Key,
their messages in groups (`shared.jobs.groups`); and making sure replicas hold them before a
202."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    ImgclfError,
    QueueFullError,
    StoreUnavailableError,
)
from shared.jobs import keys, record, scripts
from shared.jobs.groups import Group, Grouping, plan
from shared.jobs.operations import Replication, not_found, read_jobs
from shared.jobs.steps import Operation, send
from shared.kombu_messages import ClassifyQueue
from shared.priorities import PRIORITIES
from shared.schemas import Job, NewJob


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """How much may wait: jobs per priority (MAX_QUEUE_LENGTH) and bytes of their images
    (MAX_QUEUED_BYTES)."""

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
class Request:
    """One submit's jobs (one priority), queued all or none: their ids, the request's
    Idempotency-Key if it sent one, whose they are (a digest of the caller's API key, '' with
    keys off) and the submit's trace context (`traceparent`, '' without tracing)."""

    uploads: Sequence[tuple[NewJob, bytes]]
    job_ids: Sequence[str] = field(default_factory=list)
    idempotency: Idempotency | None = None
    owner: str = ""
    trace: str = ""

    def __post_init__(self) -> None:
        if not self.job_ids:
            object.__setattr__(self, "job_ids", [keys.new_job_id() for _ in self.uploads])


# What became of a request: its jobs (for a key seen before, the jobs it made then), or why not.
Outcome = list[Job] | ImgclfError


@dataclass(frozen=True, slots=True)
class Queued:
    """A transaction's outcomes, one per request, and the messages it pushed (their priority
    and body), to take back if replicas do not copy them."""

    outcomes: list[Outcome]
    messages: list[tuple[str, str]]


def enqueue(
    requests: Sequence[Request],
    *,
    queues: Mapping[str, ClassifyQueue],
    limits: QueueLimits,
    ttl: int,
    grouping: Grouping,
) -> Operation[Queued]:
    """Store each request's jobs with their images and push their groups' messages, in one
    transaction; every request's jobs are queued or none of them, on its own (`QueueFullError`
    past either limit, `IdempotencyKeyReusedError` / `IdempotencyInProgressError` for a key
    used before by another request or one still being accepted)."""
    now = time.time()
    jobs = [
        (job_id, job, image, request)
        for request in requests
        for job_id, (job, image) in zip(request.job_ids, request.uploads, strict=True)
    ]
    groups, member_of = plan([(i, job.priority, len(img)) for i, job, img, _ in jobs], grouping)
    fields = [_fields(job, request, now) for _, job, _, request in jobs]
    # Every job has the same fields, so the script reads them in strides of one width.
    width = 2 * len(fields[0]) if fields else 0
    script_keys = [*keys.QUEUED_BOOKKEEPING, *(queues[p].name for p in PRIORITIES)]
    script_keys += [r.idempotency.record if r.idempotency else keys.NO_IDEMPOTENCY_KEY
                    for r in requests]  # fmt: skip
    args: list[object] = [limits.jobs, limits.image_bytes, ttl, width, len(requests), len(groups)]
    traces = {job_id: request.trace for job_id, _, _, request in jobs}
    messages = [(g.priority, _message(queues[g.priority], g, traces)) for g in groups]
    for (priority, body), group in zip(messages, groups, strict=True):
        args += [priority, body, group.tag]
    args += itertools.chain(*(_request_args(request) for request in requests))
    for (job_id, _, image, _), job_fields, number in zip(jobs, fields, member_of, strict=True):
        script_keys += [keys.job_key(job_id), keys.image_key(job_id)]
        args += [job_id, len(image), number + 1, *itertools.chain(*job_fields.items())]
    images = [("SET", keys.image_key(i), image, "EX", ttl) for i, _, image, _ in jobs]
    *_, replies = yield from send(*images, scripts.ENQUEUE.call(script_keys, args), atomic=True)
    outcomes: list[Outcome] = []
    written: set[int] = set()  # the groups with a job the script wrote: their messages went out
    at = 0
    for request, reply in zip(requests, replies, strict=True):
        count = len(request.uploads)
        if reply[0] == 1:
            written.update(member_of[at : at + count])
        outcomes.append((yield from _outcome(request, reply, fields[at : at + count], limits)))
        at += count
    return Queued(outcomes, [messages[g] for g in sorted(written)])


def _message(queue: ClassifyQueue, group: Group, traces: Mapping[str, str]) -> str:
    # A lone job's task continues its submit's trace; a group's starts one of its own.
    trace = traces[group.job_ids[0]] if len(group.job_ids) == 1 else ""
    return queue.message(*group.job_ids, tag=group.tag, trace=trace)


def _fields(job: NewJob, request: Request, now: float) -> dict[str, str]:
    return record.queued_fields(job, created_at=now, owner=request.owner, trace=request.trace)


def _request_args(request: Request) -> list[object]:
    idem = request.idempotency
    fingerprint = idem.fingerprint if idem else ""
    state = ("pending" if idem.pending else "done") if idem else ""
    return [fingerprint, state, request.uploads[0][0].priority, len(request.uploads)]


def _outcome(
    request: Request, reply: list[object], made: list[dict[str, str]], limits: QueueLimits
) -> Operation[Outcome]:
    code, detail, *over = reply
    if code == 1:
        return [record.job_from_fields(i, f) for i, f in zip(request.job_ids, made, strict=True)]
    if code == 0:
        return _queue_full(int(str(detail)), by_bytes=over == [b"bytes"], limits=limits)
    assert isinstance(detail, bytes)
    try:
        return (yield from _seen_before(detail))
    except ImgclfError as exc:
        return exc


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


def settle_idempotency(records: Sequence[Idempotency], *, accepted: bool) -> Operation[None]:
    """After `replicated_or_withdrawn`: the keys' records become final, or go with their jobs."""
    if not records:
        return
    if accepted:
        yield from send(*(("HSET", idem.record, "state", "done") for idem in records))
    else:
        yield from send(*(("DEL", idem.record) for idem in records))


def replicated_or_withdrawn(
    job_ids: Sequence[str],
    messages: Sequence[tuple[str, str]],
    *,
    queues: Mapping[str, ClassifyQueue],
    replication: Replication,
) -> Operation[None]:
    """After `enqueue`: wait until `replication.replicas` replicas hold the new jobs, or take
    them back with their `messages` and fail with `StoreUnavailableError`, since a failover
    could otherwise lose jobs that were answered 202."""
    (copies,) = yield from send(("WAIT", replication.replicas, replication.timeout_ms))
    if int(copies) >= replication.replicas:
        return
    script_keys = [*keys.QUEUED_BOOKKEEPING, *(queues[p].name for p in PRIORITIES)]
    for job_id in job_ids:
        script_keys += [keys.job_key(job_id), keys.image_key(job_id)]
    args = [len(messages), *itertools.chain(*messages), *job_ids]
    yield from send(scripts.WITHDRAW.call(script_keys, args))
    raise StoreUnavailableError(
        f"The job store (Redis) could not copy the job to {replication.replicas} replica(s) "
        f"within {replication.timeout_ms} ms (REDIS_WAIT_REPLICAS); nothing was queued, retry "
        "shortly"
    )

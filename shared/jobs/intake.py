"""The job store's intake as I/O-free operations (see `shared.jobs.operations`): queuing the jobs
of one or more requests in one transaction, each request all or none with its Idempotency-Key,
their messages in groups (`shared.jobs.groups`); and making sure replicas hold them before a
202."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.errors import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    ImgclfError,
    QueueFullError,
    StoreUnavailableError,
)
from shared.jobs import keys, record, scripts
from shared.jobs.collections import collect_call
from shared.jobs.enqueue_call import ModelCall
from shared.jobs.groups import Grouping
from shared.jobs.operations import Replication, not_found, read_jobs
from shared.jobs.steps import Operation, send
from shared.kombu_messages import Lanes
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
    """One submit's jobs (one model, one priority), queued all or none: their ids, the request's
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

    @property
    def model(self) -> str:
        """The model the request's jobs run on (one for all of them)."""
        return self.uploads[0][0].model


# What became of a request: its jobs (for a key seen before, the jobs it made then), or why not.
Outcome = list[Job] | ImgclfError


@dataclass(frozen=True, slots=True)
class Queued:
    """A transaction's outcomes, one per request, and the messages it pushed (their model,
    priority and body), to take back if replicas do not copy them."""

    outcomes: list[Outcome]
    messages: list[tuple[str, str, str]]


def enqueue(
    requests: Sequence[Request],
    *,
    queues: Lanes,
    limits: QueueLimits,
    ttl: int,
    grouping: Grouping,
) -> Operation[Queued]:
    """Store each request's jobs with their images and push their groups' messages, in one
    transaction; every request's jobs are queued or none of them, on its own (`QueueFullError`
    past either limit, `IdempotencyKeyReusedError` / `IdempotencyInProgressError` for a key
    used before by another request or one still being accepted). Requests for several models
    go in one script call per model (each model's queues and bookkeeping are its own), all in
    the one transaction; jobs of a collection join it there too."""
    now = time.time()
    by_model: dict[str, list[int]] = {}
    for at, request in enumerate(requests):
        by_model.setdefault(request.model, []).append(at)
    calls = [
        ModelCall([requests[at] for at in ats], model, queues.of(model), grouping, now)
        for model, ats in by_model.items()
    ]
    images = [
        ("SET", keys.image_key(job_id), image, "EX", ttl)
        for request in requests
        for job_id, (_, image) in zip(request.job_ids, request.uploads, strict=True)
    ]
    steps = [
        call.step(max_jobs=limits.jobs, max_bytes=limits.image_bytes, ttl=ttl) for call in calls
    ]
    members: dict[str, list[str]] = {}
    for request in requests:
        for job_id, (job, _) in zip(request.job_ids, request.uploads, strict=True):
            if job.collection_id is not None:
                members.setdefault(job.collection_id, []).append(job_id)
    collects = [collect_call(collection, ids) for collection, ids in members.items()]
    replies = (yield from send(*images, *steps, *collects, atomic=True))[len(images) :]
    replies = replies[: len(steps)]
    outcomes: dict[int, Outcome] = {}
    messages: list[tuple[str, str, str]] = []
    for call, ats, reply in zip(calls, by_model.values(), replies, strict=True):
        made = yield from _outcomes(call, reply, limits)
        outcomes.update(zip(ats, made, strict=True))
        messages += call.sent(reply)
    return Queued([outcomes[at] for at in range(len(requests))], messages)


def _outcomes(
    call: ModelCall, replies: list[list[object]], limits: QueueLimits
) -> Operation[list[Outcome]]:
    """What became of each request of `call`, from the script's replies."""
    made: list[Outcome] = []
    at = 0
    for request, reply in zip(call.requests, replies, strict=True):
        count = len(request.uploads)
        made.append((yield from _outcome(request, reply, call.fields[at : at + count], limits)))
        at += count
    return made


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
    requests: Sequence[Request],
    messages: Sequence[tuple[str, str, str]],
    *,
    queues: Lanes,
    replication: Replication,
) -> Operation[None]:
    """After `enqueue`: wait until `replication.replicas` replicas hold the jobs of `requests`,
    or take them back with their `messages` (per model) and fail with `StoreUnavailableError`,
    since a failover could otherwise lose jobs that were answered 202."""
    (copies,) = yield from send(("WAIT", replication.replicas, replication.timeout_ms))
    if int(copies) >= replication.replicas:
        return
    for model in sorted({request.model for request in requests}):
        job_ids = [i for request in requests if request.model == model for i in request.job_ids]
        script_keys = [
            *keys.queued_bookkeeping(model),
            *(q.name for q in queues.of(model).values()),
        ]
        for job_id in job_ids:
            script_keys += [keys.job_key(job_id), keys.image_key(job_id)]
        mine = [(priority, body) for m, priority, body in messages if m == model]
        args = [len(mine), *itertools.chain(*mine), *job_ids]
        yield from send(scripts.WITHDRAW.call(script_keys, args))
    raise StoreUnavailableError(
        f"The job store (Redis) could not copy the job to {replication.replicas} replica(s) "
        f"within {replication.timeout_ms} ms (REDIS_WAIT_REPLICAS); nothing was queued, retry "
        "shortly"
    )

"""The job store's operations as I/O-free generators: each yields the Redis round trips it needs
(`Step`) and receives their replies; `shared.jobs.runners` sends them, blocking or on asyncio.

Writing the logic once here keeps the two runners to a loop each, the way httpx writes its sync
and async clients as thin twins over one base.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from shared.errors import (
    ImgclfError,
    JobNotCancelableError,
    JobNotFoundError,
    WorkerLostError,
)
from shared.jobs import keys, record, scripts
from shared.jobs.steps import Operation, send
from shared.kombu_messages import ClassifyQueue
from shared.model_cards import ORIGINAL_MODEL
from shared.priorities import PRIORITIES
from shared.schemas import CallbackState, ErrorBody, Job, JobResult, JobStatus


@dataclass(frozen=True, slots=True)
class Claim:
    """A job a worker has taken: what it needs to run it."""

    job_id: str
    created_at: float
    started_at: float
    top_k: int
    image: bytes
    # The submit's trace context (`traceparent`), '' without one.
    trace: str = ""
    # The model it runs on.
    model: str = ORIGINAL_MODEL


@dataclass(frozen=True, slots=True)
class Delivery:
    """The jobs a queue message carries, its tag (its task id; a lone job's: its id) and the
    model they run on (the message's queue's)."""

    job_ids: Sequence[str]
    tag: str = ""
    model: str = ORIGINAL_MODEL

    @classmethod
    def alone(cls, job_id: str) -> Delivery:
        return cls([job_id], job_id)


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim of a delivery's jobs gave: the jobs to run now, and those to run alone (taken
    over from a process that died holding several jobs: any of them may have killed it)."""

    jobs: list[Claim]
    alone: list[str]


def not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"Job {job_id} not found (unknown id, or expired)")


def get(job_id: str) -> Operation[Job]:
    """The job, or `JobNotFoundError` for an unknown or expired id."""
    (raw,) = yield from send(("HGETALL", keys.job_key(job_id)))
    if not raw:
        raise not_found(job_id)
    return record.job_from_fields(job_id, record.decoded(raw))


@dataclass(frozen=True, slots=True)
class Replication:
    """How many replicas must hold new jobs (Redis WAIT) before they count as accepted."""

    replicas: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Keeping:
    """How the worker's store records outcomes: how long failed jobs' images and lists are kept
    (the job TTL), and the replicas to wait for."""

    ttl: int
    replication: Replication | None = None
    # Where a finished job's webhook message goes (`worker.webhook_app` consumes it).
    webhooks: ClassifyQueue | None = None


def claim(
    delivery: Delivery,
    *,
    worker_id: str,
    max_attempts: int,
    keeping: Keeping,
    takeover: bool = True,
) -> Operation[Claimed]:
    """Mark the jobs of a delivery running in `worker_id`, in one transaction that also reads
    their images.

    Left out: canceled, finished or expired jobs; jobs put back since with a message of their
    own; jobs running in another live process; jobs started `max_attempts` times already by
    processes that died (a poison image must not kill workers forever: each fails instead).
    Without `takeover`, a job another process holds is never run. See `lua/claim.lua` for what
    counts as an attempt.
    """
    now, job_ids, model = time.time(), delivery.job_ids, delivery.model
    script_keys = [keys.RUNNING_KEY, keys.WORKERS_KEY, *keys.watermarks(model)]
    script_keys += keys.queued_bookkeeping(model)
    script_keys += [keys.job_key(job_id) for job_id in job_ids]
    args = [repr(now), *job_ids, worker_id, max_attempts, int(takeover), delivery.tag or job_ids[0]]
    replies, *images = yield from send(
        scripts.CLAIM.call(script_keys, args),
        *(("GET", keys.image_key(job_id)) for job_id in job_ids),
        atomic=True,
    )
    claimed = Claimed([], [])
    for job_id, reply, image in zip(job_ids, replies, images, strict=True):
        if reply[0] == b"run":
            _, created_at, top_k, trace = reply
            claim = Claim(
                job_id, float(created_at), now, int(top_k), image or b"", trace.decode(), model
            )
            claimed.jobs.append(claim)
        elif reply[0] == b"suspect":
            claimed.alone.append(job_id)
        elif reply[0] == b"exhausted":
            message = f"The worker processing this image died {max_attempts} times; giving up"
            error = WorkerLostError(message)
            yield from finish([Outcome(job_id, error=error, model=model)], keeping)
    return claimed


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job ended: its result, or its error."""

    job_id: str
    result: JobResult | None = None
    error: ImgclfError | None = None
    # The `traceparent` the job's webhook delivery continues ('': the current span's).
    trace: str = ""
    # The job's model (its queued bookkeeping is the model's).
    model: str = ORIGINAL_MODEL


def succeed(job_id: str, result: JobResult, keeping: Keeping) -> Operation[bool]:
    (done,) = yield from finish([Outcome(job_id, result=result)], keeping)
    return done


def fail(job_id: str, error: ImgclfError, keeping: Keeping) -> Operation[bool]:
    (done,) = yield from finish([Outcome(job_id, error=error)], keeping)
    return done


def finish(outcomes: Sequence[Outcome], keeping: Keeping) -> Operation[list[bool]]:
    """Record each job's terminal state, once, in one round trip; for each, False if the job
    was already terminal or is gone.

    With `replication`, it waits for the replicas too, but only so that a master that dies
    before a replica has the outcomes fails the call (a lost connection), and the caller writes
    them again to the new master; a replica merely slow to answer is not worth stalling the
    worker for, so WAIT's count is not checked.
    """
    done = yield from send(*(_finish(outcome, keeping) for outcome in outcomes))
    replication = keeping.replication
    if replication is not None and replication.replicas > 0:
        yield from send(("WAIT", replication.replicas, replication.timeout_ms))
    return [bool(one) for one in done]


def _finish(outcome: Outcome, keeping: Keeping) -> tuple[object, ...]:
    job_id, webhooks = outcome.job_id, keeping.webhooks
    if outcome.error is not None:
        body = ErrorBody(code=outcome.error.code, message=outcome.error.message)
        status, field, payload = JobStatus.FAILED, "error", body.model_dump_json()
    else:
        assert outcome.result is not None
        status, field, payload = JobStatus.SUCCEEDED, "result", outcome.result.model_dump_json()
    script_keys = [
        keys.job_key(job_id),
        keys.image_key(job_id),
        keys.STATS_KEY,
        keys.RUNNING_KEY,
        *keys.queued_bookkeeping(outcome.model),
        webhooks.name if webhooks else keys.NO_WEBHOOKS_KEY,
    ]
    args = [status.value, field, payload, repr(time.time()), keys.EVENTS_CHANNEL, job_id]
    args += [str(keeping.ttl), keys.FAILURES_PREFIX, str(keys.MAX_LISTED_FAILURES)]
    args += [webhooks.message(job_id, trace=outcome.trace) if webhooks else ""]
    return scripts.FINISH.call(script_keys, args)


def cancel(job_id: str, webhooks: ClassifyQueue | None = None) -> Operation[Job]:
    """Cancel a queued job (its webhook, if any, to `webhooks`); `JobNotCancelableError` once it
    runs or has finished."""
    (model,) = yield from send(("HGET", keys.job_key(job_id), "model"))
    call = cancel_call(job_id, model.decode() if model else ORIGINAL_MODEL, webhooks)
    (outcome,) = yield from send(call)
    if outcome == b"missing":
        raise not_found(job_id)
    if outcome != b"ok":
        raise JobNotCancelableError(
            f"Job {job_id} is {outcome.decode()}; only queued jobs can be canceled"
        )
    return (yield from get(job_id))


def cancel_call(job_id: str, model: str, webhooks: ClassifyQueue | None) -> tuple[object, ...]:
    """The script call that cancels a queued job of `model`: 'ok', 'missing', or the status
    that refused it."""
    script_keys = [
        keys.job_key(job_id),
        keys.image_key(job_id),
        keys.STATS_KEY,
        *keys.queued_bookkeeping(model),
        webhooks.name if webhooks else keys.NO_WEBHOOKS_KEY,
    ]
    args = [
        repr(time.time()),
        keys.EVENTS_CHANNEL,
        job_id,
        webhooks.message(job_id) if webhooks else "",
    ]
    return scripts.CANCEL.call(script_keys, args)


def read_jobs(job_ids: Sequence[str]) -> Operation[list[Job | None]]:
    """The jobs `job_ids` name, read in one round trip; None for one that has gone."""
    if not job_ids:
        return []
    raws = yield from send(*(("HGETALL", keys.job_key(job_id)) for job_id in job_ids))
    return [
        record.job_from_fields(job_id, record.decoded(raw)) if raw else None
        for job_id, raw in zip(job_ids, raws, strict=True)
    ]


def failures(owner: str, *, limit: int) -> Operation[list[Job]]:
    """`owner`'s most recent failed jobs, newest first (those expired since are left out)."""
    (ids,) = yield from send(("ZREVRANGE", keys.failures_key(owner), 0, limit - 1))
    jobs = yield from read_jobs([job_id.decode() for job_id in ids])
    return [job for job in jobs if job is not None]


def with_image(job_id: str) -> Operation[tuple[Job, bytes | None]]:
    """The job and its image, if it still has one (failed and canceled jobs keep theirs)."""
    raw, image = yield from send(("HGETALL", keys.job_key(job_id)), ("GET", keys.image_key(job_id)))
    if not raw:
        raise not_found(job_id)
    return record.job_from_fields(job_id, record.decoded(raw)), image


def record_callback(job_id: str, state: CallbackState) -> Operation[bool]:
    """A webhook delivery's progress on its job; False once the job has expired."""
    (done,) = yield from send(
        scripts.CALLBACK_STATE.call([keys.job_key(job_id)], [state.model_dump_json()])
    )
    return bool(done)


def queued_bytes() -> Operation[int]:
    """Bytes of the images of queued jobs (MAX_QUEUED_BYTES counts them)."""
    (count,) = yield from send(("GET", keys.QUEUED_BYTES_KEY))
    return int(count or 0)


def queue_lengths(queues: Sequence[ClassifyQueue]) -> Operation[dict[str, int]]:
    """Messages waiting in each queue, by its name (a message carries one job or a group), in
    one round trip."""
    lengths = yield from send(*(("LLEN", queue.name) for queue in queues))
    return {queue.name: int(n) for queue, n in zip(queues, lengths, strict=True)}


def queued_counts(models: Sequence[str]) -> Operation[dict[str, dict[str, int]]]:
    """Jobs waiting, by model and priority (the queued indexes), in one round trip."""
    lanes = [(model, priority) for model in models for priority in PRIORITIES]
    counts = yield from send(*(("ZCARD", keys.queued_key(p, m)) for m, p in lanes))
    queued: dict[str, dict[str, int]] = {model: {} for model in models}
    for (model, priority), count in zip(lanes, counts, strict=True):
        queued[model][priority] = int(count)
    return queued


def running_count() -> Operation[int]:
    """Jobs a worker has claimed and not yet finished."""
    (count,) = yield from send(("SCARD", keys.RUNNING_KEY))
    return int(count)


def finished_counts() -> Operation[dict[str, int]]:
    """Jobs that reached each terminal status since Redis was set up (cluster-wide)."""
    (raw,) = yield from send(("HGETALL", keys.STATS_KEY))
    return {k.decode(): int(v) for k, v in raw.items()}

"""The recovery sweep's operations, I/O-free like `shared.jobs.operations`: running jobs and
their owners, putting back a dead or overdue process's job, and queued jobs whose message was
lost."""

from __future__ import annotations

from shared.jobs import keys, scripts
from shared.jobs.steps import Operation, send
from shared.kombu_messages import UNACKED_KEY, ClassifyQueue, Lanes
from shared.model_cards import ORIGINAL_MODEL
from shared.priorities import DEFAULT_PRIORITY


def running_jobs() -> Operation[dict[str, str]]:
    """Running job id -> the worker process that claimed it."""
    (members,) = yield from send(("SMEMBERS", keys.RUNNING_KEY))
    ids = sorted(member.decode() for member in members)
    if not ids:
        return {}
    owners = yield from send(*(("HGET", keys.job_key(job_id), "worker") for job_id in ids))
    return {job_id: (owner or b"").decode() for job_id, owner in zip(ids, owners, strict=True)}


def requeue_orphan(
    job_id: str,
    *,
    worker_id: str,
    queues: Lanes,
    max_running_ms: int = 0,
    hand_back: bool = False,
) -> Operation[int]:
    """Put a job back to 'queued', with a new message of its own on its lane's queue, if
    `worker_id` still holds it and its heartbeat has expired (1), or it has run longer than
    `max_running_ms` for each job its process held with it (2, when not 0); with `hand_back`,
    because `worker_id` itself gives it back (3); 0 when another process has it now, it is
    alive and in time, or it has finished."""
    (fields,) = yield from send(("HMGET", keys.job_key(job_id), "priority", "model"))
    priority, model = (value.decode() if value else None for value in fields)
    model = model or ORIGINAL_MODEL
    queue = queues.queue(model, priority or DEFAULT_PRIORITY)
    # Back alone, with a message of its own (its group's may still be held by the dead node).
    script_keys = [
        keys.job_key(job_id),
        keys.RUNNING_KEY,
        queue.name,
        keys.WORKERS_KEY,
        *keys.queued_bookkeeping(model),
    ]
    args = [worker_id, job_id, queue.message(job_id), max_running_ms, int(hand_back)]
    (outcome,) = yield from send(scripts.REQUEUE.call(script_keys, args))
    return int(outcome)


def lost_messages(
    queue: ClassifyQueue, *, priority: str, grace_ms: int, limit: int
) -> Operation[list[str]]:
    """Queued jobs of a lane (its model at `priority`, whose queue is `queue`) whose queue
    message is gone (see `scripts.RECONCILE`), at most `limit`."""
    model = queue.model or ORIGINAL_MODEL
    index, watermark = keys.queued_key(priority, model), keys.watermark_key(priority, model)
    script_keys = [index, watermark, queue.name, UNACKED_KEY]
    args = [grace_ms, limit, keys.job_key("")]
    (ids,) = yield from send(scripts.RECONCILE.call(script_keys, args))
    return [job_id.decode() for job_id in ids]


def republish(job_id: str, *, queue: ClassifyQueue) -> Operation[bool]:
    """A new queue message of its own, on its lane's `queue`, for a queued job that has none
    (its group's lost); False when it no longer needs one."""
    bookkeeping = keys.queued_bookkeeping(queue.model or ORIGINAL_MODEL)
    script_keys = [keys.job_key(job_id), queue.name, UNACKED_KEY, *bookkeeping]
    (published,) = yield from send(
        scripts.REPUBLISH.call(script_keys, [job_id, queue.message(job_id)])
    )
    return bool(published)

"""A collection's life in the job store, as I/O-free operations: open it, add its images (the
`collect` step rides in the intake's own transaction), read it, close it, cancel it and read its
results page by page.

A collection is a hash (options, owner, state, counts by job status) and two lists: its jobs in
the order added, and its ended jobs in the order they ended. The counts and the ended list move
inside the scripts that move its jobs (`lua/includes/collection.lua`), so they never disagree
with the jobs. Each custom_id has a record like an Idempotency-Key's (`keys.custom_id_key`):
adding it again finds the job it made.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.collection_schemas import Collection, CollectionCounts, CollectionState
from shared.errors import CollectionNotFoundError, IdempotencyKeyReusedError
from shared.jobs import keys, record, scripts
from shared.jobs.operations import cancel_call, read_jobs
from shared.jobs.steps import Operation, send
from shared.kombu_messages import ClassifyQueue
from shared.priorities import Priority
from shared.schemas import CallbackState, ErrorBody, Job, JobStatus, NewJob

# Jobs read or canceled per round trip while paging through a collection.
PAGE = 500


@dataclass(frozen=True, slots=True)
class NewCollection:
    """What a collection is made with: its options, whose it is (a digest of the caller's API
    key, '' with keys off), how long it takes images (JOB_TTL_SECONDS), and with a
    `callback_url` its webhook's message and the list it goes on once the collection is done."""

    model: str
    top_k: int
    priority: Priority
    job_callback_url: str | None = None
    owner: str = ""
    ttl: int = 24 * 3600
    collection_id: str = field(default_factory=keys.new_job_id)
    callback_url: str | None = None
    callback_message: str = ""
    webhooks: str = ""


@dataclass(frozen=True, slots=True)
class Stored:
    """A collection as read, and whose it is."""

    collection: Collection
    owner: str


def open_collection(
    new: NewCollection, *, idempotency: tuple[str, str] | None = None
) -> Operation[str]:
    """A new collection's id; with `idempotency` (its record, the request's fingerprint) seen
    before, the collection made then (`IdempotencyKeyReusedError` for another request's)."""
    collection_id, now = new.collection_id, time.time()
    fields = {
        "owner": new.owner,
        "model": new.model,
        "top_k": str(new.top_k),
        "priority": new.priority,
        "job_callback_url": new.job_callback_url or "",
        "callback_url": new.callback_url or "",
        "callback_message": new.callback_message,
        "webhooks": new.webhooks,
        "created_at": repr(now),
        "expires_at": repr(now + new.ttl),
    }
    record_key, fingerprint = idempotency or (keys.NO_IDEMPOTENCY_KEY, "")
    # Kept as long again after it stops taking images, so that its results can still be read.
    args = [2 * new.ttl, fingerprint, *(item for pair in fields.items() for item in pair)]
    ((code, *made),) = yield from send(
        scripts.OPEN_COLLECTION.call([keys.collection_key(collection_id), record_key], args)
    )
    if code == 2:
        raise IdempotencyKeyReusedError(
            "This Idempotency-Key was used with another request (other options); use a new key "
            "for a new collection"
        )
    return made[0].decode() if code == 3 else collection_id


def read(collection_id: str) -> Operation[Stored]:
    """The collection, or `CollectionNotFoundError` (unknown, or deleted since)."""
    (raw,) = yield from send(("HGETALL", keys.collection_key(collection_id)))
    if not raw:
        raise not_found(collection_id)
    return stored(collection_id, record.decoded(raw), now=time.time())


def not_found(collection_id: str) -> CollectionNotFoundError:
    return CollectionNotFoundError(f"Collection {collection_id} not found (unknown id, or expired)")


def stored(collection_id: str, fields: Mapping[str, str], *, now: float) -> Stored:
    """The collection its hash describes, its state as of `now`."""
    counts = CollectionCounts.model_validate(
        {name: int(fields.get(name, 0)) for name in CollectionCounts.model_fields}
    )
    closed_at = float(fields["closed_at"]) if fields.get("closed_at") else None
    expires_at = float(fields["expires_at"])
    if fields.get("canceled_at"):
        state = CollectionState.CANCELED
    elif closed_at is not None and counts.ended >= counts.total:
        state = CollectionState.COMPLETED
    elif now >= expires_at:
        state = CollectionState.EXPIRED
    else:
        state = CollectionState.OPEN if closed_at is None else CollectionState.RUNNING
    collection = Collection(
        collection_id=collection_id,
        state=state,
        model=fields["model"],
        top_k=int(fields["top_k"]),
        priority=fields["priority"],
        job_callback_url=fields.get("job_callback_url") or None,
        callback_url=fields.get("callback_url") or None,
        callback=CallbackState.model_validate_json(fields["callback"])
        if fields.get("callback")
        else None,
        counts=counts,
        created_at=_time(float(fields["created_at"])),
        closed_at=_time(closed_at) if closed_at is not None else None,
        expires_at=_time(expires_at),
    )
    return Stored(collection, fields.get("owner", ""))


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def close(collection_id: str, *, cancel: bool = False) -> Operation[Stored]:
    """Take no more images (closing twice is closing once); with `cancel`, mark it canceled."""
    key = keys.collection_key(collection_id)
    yield from send(scripts.CLOSE_COLLECTION.call([key], [repr(time.time()), int(cancel)]))
    return (yield from read(collection_id))


def cancel(collection_id: str, webhooks: ClassifyQueue | None = None) -> Operation[Stored]:
    """Close the collection and cancel each of its jobs still queued (running ones finish); a
    job's webhook, if it asked for one, to `webhooks`."""
    key = keys.collection_key(collection_id)
    yield from close(collection_id, cancel=True)
    (model,) = yield from send(("HGET", key, "model"))
    start = 0
    while True:
        (ids,) = yield from send(
            ("LRANGE", keys.collection_items_key(collection_id), start, start + PAGE - 1)
        )
        if ids:
            yield from send(*(cancel_call(i.decode(), model.decode(), webhooks) for i in ids))
        if len(ids) < PAGE:
            return (yield from read(collection_id))
        start += PAGE


def ended_count(collection_id: str) -> Operation[int]:
    """How many of its jobs have ended: the cursor of its last result line."""
    (count,) = yield from send(("LLEN", keys.collection_ended_key(collection_id)))
    return int(count)


def ended_jobs(
    collection_id: str, start: int, stop: int
) -> Operation[list[tuple[str, Job | None]]]:
    """Its ended jobs from `start` to `stop` (exclusive), in the order they ended, by id; None
    for one deleted since."""
    (raw,) = yield from send(("LRANGE", keys.collection_ended_key(collection_id), start, stop - 1))
    ids = [job_id.decode() for job_id in raw]
    return list(zip(ids, (yield from read_jobs(ids)), strict=True))


def item_fingerprint(collection_id: str, custom_id: str) -> str:
    """What a custom_id's record holds: the same for every add of it, so an add of it again is
    one seen before (the job it made), whatever the image."""
    return hashlib.sha256(f"{collection_id}\0{custom_id}".encode()).hexdigest()


def known_items(collection_id: str, custom_ids: Sequence[str]) -> Operation[dict[str, Job]]:
    """The jobs of those of `custom_ids` added before, by custom_id."""
    if not custom_ids:
        return {}
    made = yield from send(
        *(("HGET", keys.custom_id_key(collection_id, c), "jobs") for c in custom_ids)
    )
    known = {c: ids.decode() for c, ids in zip(custom_ids, made, strict=True) if ids}
    jobs = yield from read_jobs(list(known.values()))
    return {c: job for c, job in zip(known, jobs, strict=True) if job is not None}


def collect_call(collection_id: str, job_ids: Sequence[str]) -> tuple[object, ...]:
    """The script call that adds jobs just queued (in the same transaction) to a collection."""
    script_keys = [keys.collection_key(collection_id), keys.collection_items_key(collection_id)]
    return scripts.COLLECT.call(script_keys + [keys.job_key(i) for i in job_ids], job_ids)


def record_failed(
    collection_id: str, items: Sequence[tuple[NewJob, ErrorBody]], *, owner: str, ttl: int
) -> Operation[list[Job]]:
    """Items that can never run, as failed jobs of the collection (each custom_id once); the job
    that stands for each, in order."""
    now = repr(time.time())
    script_keys = [
        keys.collection_key(collection_id),
        keys.collection_items_key(collection_id),
        keys.collection_ended_key(collection_id),
    ]
    args: list[object] = [ttl, 0]
    for job, error in items:
        assert job.custom_id is not None
        job_id = keys.new_job_id()
        fields = record.queued_fields(job, created_at=float(now), owner=owner)
        fields.update(status=JobStatus.FAILED.value, finished_at=now, error=error.model_dump_json())
        script_keys += [keys.job_key(job_id), keys.custom_id_key(collection_id, job.custom_id)]
        args[1] = 2 * len(fields)
        args += [job_id, item_fingerprint(collection_id, job.custom_id)]
        args += [item for pair in fields.items() for item in pair]
    (made,) = yield from send(scripts.COLLECT_FAILED.call(script_keys, args))
    if not made:
        raise not_found(collection_id)
    jobs = yield from read_jobs([job_id.decode() for job_id in made])
    return [job for job in jobs if job is not None]


def record_callback(collection_id: str, state: CallbackState) -> Operation[bool]:
    """Its webhook's progress; False once it has gone."""
    key = keys.collection_key(collection_id)
    (done,) = yield from send(scripts.CALLBACK_STATE.call([key], [state.model_dump_json()]))
    return bool(done)

"""Every Redis key and channel imgclf uses, in one place (`docs/ARCHITECTURE.md` maps them)."""

from __future__ import annotations

import hashlib
import uuid

from shared.priorities import PRIORITIES, per_lane

KEY_PREFIX = "imgclf"
EVENTS_CHANNEL = f"{KEY_PREFIX}:events"
STATS_KEY = f"{KEY_PREFIX}:stats:finished"
RUNNING_KEY = f"{KEY_PREFIX}:running"
# Per lane (a model at a priority), queued job ids scored by when they were queued (Redis's
# clock, ms), and the latest such time of a job claimed so far: together they find queued jobs
# whose message was lost (each lane's queue is first in, first out; lanes together are not).
# SqueezeNet at `normal` keeps the names of the time before priorities and models.
QUEUED_KEY = f"{KEY_PREFIX}:queued"
CLAIM_WATERMARK_KEY = f"{KEY_PREFIX}:claimed-watermark"


def queued_key(priority: str, model: str) -> str:
    return per_lane(QUEUED_KEY, model, priority, separator=":")


def watermark_key(priority: str, model: str) -> str:
    return per_lane(CLAIM_WATERMARK_KEY, model, priority, separator=":")


# Bytes of queued images, in all and per job (MAX_QUEUED_BYTES).
QUEUED_BYTES_KEY = f"{KEY_PREFIX}:queued-bytes"
QUEUED_SIZES_KEY = f"{KEY_PREFIX}:queued-sizes"


def queued_bookkeeping(model: str) -> tuple[str, ...]:
    """The five keys the scripts keep together for every queued job of `model`, in this order:
    its queued indexes by priority (high, normal, low), then the bytes and sizes of all queued
    images (MAX_QUEUED_BYTES is Redis's memory, whatever the model)."""
    return (*(queued_key(p, model) for p in PRIORITIES), QUEUED_BYTES_KEY, QUEUED_SIZES_KEY)


def watermarks(model: str) -> tuple[str, ...]:
    """`model`'s claim watermarks, by priority (high, normal, low)."""
    return tuple(watermark_key(p, model) for p in PRIORITIES)


SWEEPER_LOCK_KEY = f"{KEY_PREFIX}:sweeper-lock"
# Live worker processes: a sorted set of ids scored by expiry (Redis's clock, ms), and their info.
WORKERS_KEY = f"{KEY_PREFIX}:workers"
WORKER_INFO_KEY = f"{KEY_PREFIX}:workers:info"


# The submits an Idempotency-Key has made, per caller (API key) and key; and the name passed in
# its place to the enqueue script when a submit has none (never written).
NO_IDEMPOTENCY_KEY = f"{KEY_PREFIX}:idempotency:-"
# Passed in place of the webhooks list where no webhook can be queued (never written).
NO_WEBHOOKS_KEY = f"{KEY_PREFIX}:webhooks:-"


def idempotency_key(scope: str, key: str) -> str:
    """Where a caller's Idempotency-Key is kept: both hashed, so neither an API key nor a
    client's key appears in Redis."""
    digest = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
    return f"{KEY_PREFIX}:idempotency:{digest}"


# Per owner (a digest of an API key): failed jobs scored by when they failed; the FINISH script
# names it from the job's `owner` field with this prefix.
FAILURES_PREFIX = f"{KEY_PREFIX}:failures:"
MAX_LISTED_FAILURES = 1000


def failures_key(owner: str) -> str:
    return f"{FAILURES_PREFIX}{owner}"


# A collection: its hash (options, owner, state, counts by job status), the list of its jobs in
# the order added (`:items`) and the list of those ended, in the order they ended (`:ended`, its
# results' cursor counts lines of it). The scripts name them from a job's `collection_id`.
COLLECTION_PREFIX = f"{KEY_PREFIX}:collection:"


def collection_key(collection_id: str) -> str:
    return f"{COLLECTION_PREFIX}{collection_id}"


def collection_items_key(collection_id: str) -> str:
    return f"{COLLECTION_PREFIX}{collection_id}:items"


def collection_ended_key(collection_id: str) -> str:
    return f"{COLLECTION_PREFIX}{collection_id}:ended"


def custom_id_key(collection_id: str, custom_id: str) -> str:
    """The record of a custom_id added to a collection (an Idempotency-Key record: the job it
    made), so that adding it again adds nothing."""
    return idempotency_key(f"collection:{collection_id}", custom_id)


def job_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:job:{job_id}"


def image_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:image:{job_id}"


def new_job_id() -> str:
    """A fresh job id: a random UUID, unguessable, so an id is also the right to read its job."""
    return str(uuid.uuid4())

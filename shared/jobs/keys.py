"""Every Redis key and channel imgclf uses, in one place (`docs/ARCHITECTURE.md` maps them)."""

from __future__ import annotations

import uuid

KEY_PREFIX = "imgclf"
EVENTS_CHANNEL = f"{KEY_PREFIX}:events"
STATS_KEY = f"{KEY_PREFIX}:stats:finished"
RUNNING_KEY = f"{KEY_PREFIX}:running"
SWEEPER_LOCK_KEY = f"{KEY_PREFIX}:sweeper-lock"
WORKER_KEY_PATTERN = f"{KEY_PREFIX}:worker:*"


def job_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:job:{job_id}"


def image_key(job_id: str) -> str:
    return f"{KEY_PREFIX}:image:{job_id}"


def worker_key(worker_id: str) -> str:
    return f"{KEY_PREFIX}:worker:{worker_id}"


def new_job_id() -> str:
    """A fresh job id: a random UUID, unguessable, so an id is also the right to read its job."""
    return str(uuid.uuid4())

"""Worker presence: each worker process with a loaded model keeps a short-lived key alive.

The API's `/ready` and model info read these keys instead of broadcasting to Celery, which is
slow and blocks; a process that dies simply stops refreshing its key and drops out.
"""

from __future__ import annotations

import redis
from pydantic import BaseModel

from shared.jobs.keys import WORKER_KEY_PATTERN, worker_key
from shared.redis_client import store_errors


class WorkerInfo(BaseModel):
    """What a live worker process reports about itself and its model."""

    worker_id: str
    hostname: str
    pid: int
    model_name: str
    model_sha256: str
    runtime: str
    execution_provider: str
    threads: int
    model_load_seconds: float


@store_errors
def beat(client: redis.Redis, info: WorkerInfo, *, ttl_seconds: float) -> None:
    """Announce (or refresh) a live worker process."""
    client.set(worker_key(info.worker_id), info.model_dump_json(), px=int(ttl_seconds * 1000))


@store_errors
def leave(client: redis.Redis, worker_id: str) -> None:
    """Withdraw a worker process at shutdown, without waiting for its key to expire."""
    client.delete(worker_key(worker_id))


@store_errors
def alive(client: redis.Redis) -> list[WorkerInfo]:
    """Every worker process whose heartbeat has not expired."""
    keys = sorted(client.scan_iter(match=WORKER_KEY_PATTERN, count=500))
    if not keys:
        return []
    values = client.mget(keys)
    return [WorkerInfo.model_validate_json(v) for v in values if v is not None]

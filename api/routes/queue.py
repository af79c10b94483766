"""`/api/v1/queue`: how much work waits and who is there to do it."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import RedisDep, SettingsDep, StoreDep
from api.errors import error_responses
from shared import workers
from shared.jobs import JobStore
from shared.settings import Settings

router = APIRouter(tags=["queue"])


class QueueStatus(BaseModel):
    queued: int
    running: int
    workers_online: int
    max_queue_length: int


@router.get("/queue", response_model=QueueStatus, responses=error_responses())
async def queue_status(store: StoreDep, client: RedisDep, settings: SettingsDep) -> QueueStatus:
    """Jobs waiting, jobs running, and live worker processes."""
    return await run_in_threadpool(_read, store, client, settings)


def _read(store: JobStore, client: redis.Redis, settings: Settings) -> QueueStatus:
    return QueueStatus(
        queued=store.queue_length(settings.queue_name),
        running=store.running_count(),
        workers_online=len(workers.alive(client)),
        max_queue_length=settings.max_queue_length,
    )

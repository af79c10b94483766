"""`/api/v1/queue`: how much work waits and who is there to do it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ServiceDep
from api.errors import error_responses

router = APIRouter(tags=["queue"])


class QueueStatus(BaseModel):
    queued: int
    running: int
    workers_online: int
    max_queue_length: int
    queued_bytes: int = Field(description="Bytes of the images waiting in the queue")
    max_queued_bytes: int


@router.get("/queue", response_model=QueueStatus, responses=error_responses())
async def queue_status(service: ServiceDep) -> QueueStatus:
    """Jobs waiting, jobs running, and live worker processes."""
    return QueueStatus(
        queued=await service.store.queue_length(service.settings.queue_name),
        running=await service.store.running_count(),
        workers_online=len(await service.live_workers()),
        max_queue_length=service.settings.max_queue_length,
        queued_bytes=await service.store.queued_bytes(),
        max_queued_bytes=service.settings.max_queued_bytes,
    )

"""`/api/v1/queue`: how much work waits and who is there to do it."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ServiceDep
from api.errors import error_responses
from shared.priorities import PRIORITIES
from shared.workers import serves

router = APIRouter(tags=["queue"])


class PriorityQueue(BaseModel):
    queued: int
    max_queue_length: int


class QueueStatus(BaseModel):
    queued: int = Field(description="Jobs waiting, all priorities")
    running: int
    workers_online: int
    max_queue_length: int
    queued_bytes: int = Field(description="Bytes of the images waiting in the queue")
    max_queued_bytes: int
    priorities: dict[str, PriorityQueue] = Field(
        description="Per priority (high, normal, low): jobs waiting, all models; the cap on "
        "them is per model"
    )
    models: dict[str, ModelQueue] = Field(
        description="Per model: jobs waiting (each priority's cap is its own), and its live "
        "worker processes (0: its jobs wait for one)"
    )


class ModelQueue(BaseModel):
    queued: int
    workers_online: int
    priorities: dict[str, PriorityQueue]


@router.get("/queue", response_model=QueueStatus, responses=error_responses())
async def queue_status(service: ServiceDep) -> QueueStatus:
    """Jobs waiting, jobs running, and live worker processes."""
    by_model = await service.store.queued_counts(list(service.models))
    cap = service.settings.max_queue_length
    live = await service.live_workers()
    lengths = {p: sum(queued[p] for queued in by_model.values()) for p in PRIORITIES}
    return QueueStatus(
        queued=sum(lengths.values()),
        running=await service.store.running_count(),
        workers_online=len(live),
        max_queue_length=cap,
        queued_bytes=await service.store.queued_bytes(),
        max_queued_bytes=service.settings.max_queued_bytes,
        priorities={p: PriorityQueue(queued=n, max_queue_length=cap) for p, n in lengths.items()},
        models={
            model: ModelQueue(
                queued=sum(queued.values()),
                workers_online=sum(serves(info, model) for info in live),
                priorities={
                    p: PriorityQueue(queued=n, max_queue_length=cap) for p, n in queued.items()
                },
            )
            for model, queued in by_model.items()
        },
    )

"""Liveness, readiness and metrics: the routes operators and orchestrators call."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from api.deps import ServiceDep
from shared.errors import StoreUnavailableError

router = APIRouter(tags=["system"])
# /health stays open even with API keys on: orchestrators probe it without credentials.
open_router = APIRouter(tags=["system"])


@open_router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the API process answers. It checks nothing else, so it stays cheap."""
    return {"status": "OK"}


@router.get("/ready", responses={503: {"description": "Redis or workers missing"}})
async def ready(service: ServiceDep) -> JSONResponse:
    """Readiness: 200 only when Redis answers and a worker with the model loaded is alive."""
    try:
        live = await service.live_workers()
    except StoreUnavailableError:
        return _not_ready("Redis is unreachable", redis_ok=False, workers_online=0)
    if not live:
        return _not_ready(
            "no worker with the model loaded is alive", redis_ok=True, workers_online=0
        )
    return JSONResponse(
        {"status": "ready", "redis": "ok", "workers_online": len(live)}, status_code=200
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text exposition: process metrics, then live queue figures from Redis."""
    # In the threadpool: the queue figures are read from Redis with the blocking client.
    body = await run_in_threadpool(service.metrics_exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _not_ready(message: str, *, redis_ok: bool, workers_online: int) -> JSONResponse:
    return JSONResponse(
        {
            "status": "not ready",
            "code": "not_ready",
            "message": f"Not ready: {message}",
            "redis": "ok" if redis_ok else "unreachable",
            "workers_online": workers_online,
        },
        status_code=503,
    )

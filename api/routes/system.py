"""Liveness, readiness and metrics: the routes operators and orchestrators call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from api.deps import RedisDep
from shared import workers
from shared.errors import StoreUnavailableError

router = APIRouter(tags=["system"])
# /health stays open even with API keys on: orchestrators probe it without credentials.
open_router = APIRouter(tags=["system"])


@open_router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the API process answers. It checks nothing else, so it stays cheap."""
    return {"status": "OK"}


@router.get("/ready", responses={503: {"description": "Redis or workers missing"}})
async def ready(client: RedisDep) -> JSONResponse:
    """Readiness: 200 only when Redis answers and a worker with the model loaded is alive."""
    try:
        live = await run_in_threadpool(workers.alive, client)
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
def metrics(request: Request) -> Response:
    """Prometheus text exposition: process metrics, then live queue figures from Redis."""
    registries = request.app.state.metrics
    body = b"".join(generate_latest(registry) for registry in registries)
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

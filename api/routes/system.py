"""Liveness, readiness and metrics: the routes operators and orchestrators call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from api.deps import ServiceDep
from api.security import caller_has_key
from shared.errors import StoreUnavailableError
from shared.workers import serves

router = APIRouter(tags=["system"])
# /health and /ready stay open with API keys on: orchestrators probe them without credentials.
open_router = APIRouter(tags=["system"])


@open_router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the API process answers. It checks nothing else, so it stays cheap."""
    return {"status": "OK"}


@open_router.get("/ready", responses={503: {"description": "Redis or workers missing"}})
async def ready(request: Request, service: ServiceDep) -> JSONResponse:
    """Readiness: 200 only when Redis answers and a worker with a model loaded is alive;
    `models_without_workers` names the models (MODELS) no live worker serves, whose jobs wait.

    With API keys on, a caller without one (a probe) learns only whether the API is ready.
    """
    try:
        live = await service.live_workers()
    except StoreUnavailableError:
        answer = _not_ready("Redis is unreachable", redis_ok=False, workers_online=0)
    else:
        answer = (
            _not_ready("no worker with a model loaded is alive", redis_ok=True, workers_online=0)
            if not live
            else ({"status": "ready", "redis": "ok", "workers_online": len(live)}, 200)
        )
        answer[0]["models_without_workers"] = [
            model for model in service.models if not any(serves(info, model) for info in live)
        ]
    body, status = answer
    has_key = caller_has_key(request.scope, service.api_keys)
    return JSONResponse(body if has_key else {"status": body["status"]}, status_code=status)


@router.get("/metrics", include_in_schema=False)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text exposition: process metrics, then live queue figures from Redis."""
    # In the threadpool: the queue figures are read from Redis with the blocking client.
    body = await run_in_threadpool(service.metrics_exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _not_ready(
    message: str, *, redis_ok: bool, workers_online: int
) -> tuple[dict[str, object], int]:
    body: dict[str, object] = {
        "status": "not ready",
        "code": "not_ready",
        "message": f"Not ready: {message}",
        "redis": "ok" if redis_ok else "unreachable",
        "workers_online": workers_online,
    }
    return body, 503

"""Assembles the FastAPI app: `uvicorn api.main:app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import metrics
from api.errors import install_error_handlers
from api.events import JobEvents
from api.middleware import MULTIPART_OVERHEAD_BYTES, BodySizeLimit, RequestMetrics
from api.routes import jobs, predict, queue, system
from api.security import require_api_key
from api.upload_spool import MemoryBudget, spool_uploads
from shared.jobs import AsyncJobStore, JobStore
from shared.queue import ClassifyQueue, make_celery
from shared.redis_client import connect, connect_async
from shared.settings import Settings, get_settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fully wired API; connections open lazily, so it starts even while Redis is down."""
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level)
    spool_uploads(
        MemoryBudget(settings.upload_memory_bytes), max_file_bytes=settings.max_upload_bytes
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = connect(settings.redis_url)
        app.state.store = JobStore(app.state.redis, ttl_seconds=settings.job_ttl_seconds)
        app.state.queue = ClassifyQueue(settings.queue_name, make_celery(settings))
        app.state.metrics = (
            metrics.metrics_registry(
                multiprocess_mode=settings.prometheus_multiproc_dir is not None
            ),
            metrics.queue_registry(app.state.store, settings.queue_name),
        )
        async_client = connect_async(settings.redis_url)
        app.state.async_store = AsyncJobStore(async_client, ttl_seconds=settings.job_ttl_seconds)
        app.state.events = JobEvents(async_client)
        app.state.events.start()
        yield
        await app.state.events.stop()
        app.state.redis.close()

    app = FastAPI(
        title="imgclf",
        summary="Asynchronous image classification with SqueezeNet 1.1",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Without API_KEYS there is nothing to check or to document, and no dependency to solve.
    keyed = [Depends(require_api_key)] if settings.accepted_api_keys() else []
    app.include_router(jobs.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(predict.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(queue.router, prefix=API_PREFIX, dependencies=keyed)
    app.include_router(system.router, dependencies=keyed)
    app.include_router(system.open_router)
    app.add_middleware(BodySizeLimit, limit_for=lambda path: _body_limit(path, settings))
    app.add_middleware(RequestMetrics, predict_path=f"{API_PREFIX}/predict")
    return app


def _body_limit(path: str, settings: Settings) -> int:
    files = settings.max_batch_files if path.endswith("/batch") else 1
    return files * settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES


app = create_app()

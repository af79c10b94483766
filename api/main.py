"""Assembles the FastAPI app: `uvicorn api.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import openapi
from api.collections import Collections
from api.deps import State
from api.errors import install_error_handlers
from api.middleware import RequestMetrics
from api.routes import API_PREFIX, collections, jobs, limits, models, predict, queue, system
from api.security import KEY_SCHEMES, ApiKeyMiddleware, encoded_keys
from api.service import JobService
from shared import log_format, tracing
from shared.settings import Settings, get_settings

MAX_FORM_FIELDS = 16
MAX_FORM_FIELD_BYTES = 16 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fully wired API for `settings` (the process's own by default)."""
    settings = settings or get_settings()
    log_format.configure(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        service = JobService(settings)
        await service.start()
        try:
            yield {"service": service, "collections": Collections(service)}
        finally:
            await service.stop()

    app = FastAPI(
        title="imgclf",
        summary="Asynchronous image classification: SqueezeNet 1.1 and your own ONNX models",
        version="0.1.0",
        lifespan=lifespan,
        # The upload routes take files only: a few stray text fields are tolerated, small.
        form_limits={"max_fields": MAX_FORM_FIELDS, "max_part_size": MAX_FORM_FIELD_BYTES},
    )
    app.openapi = openapi.of_deployment(app, settings)  # type: ignore[method-assign]
    install_error_handlers(app, retry_after_seconds=settings.retry_after_seconds)
    accepted = settings.accepted_api_keys()
    _include_routers(app, keyed=bool(accepted))
    if accepted:
        app.add_middleware(
            ApiKeyMiddleware,
            keys=encoded_keys(accepted),
            retry_after_seconds=settings.retry_after_seconds,
            docs_open=settings.api_docs_open,
        )
    app.add_middleware(RequestMetrics, predict_path=f"{API_PREFIX}/predict")
    if tracing.configure("imgclf-api"):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # Probes and scrapes are not worth a trace each; the body's chunks are not either.
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="/health,/ready,/metrics", exclude_spans=["receive", "send"]
        )
    return app


def _include_routers(app: FastAPI, *, keyed: bool) -> None:
    # The key schemes only document the keys (ApiKeyMiddleware enforces them); without API_KEYS
    # there is nothing to document, and no dependency to solve per request.
    dependencies = [Depends(scheme) for scheme in KEY_SCHEMES] if keyed else []
    routers = (jobs.batch_router, jobs.router, collections.router, collections.images_router)
    for router in (*routers, predict.router, models.router, queue.router, limits.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=dependencies)
    app.include_router(system.router, dependencies=dependencies)
    app.include_router(system.open_router)


app = create_app()

"""One trace per job, with OpenTelemetry: off unless `OTEL_TRACES_EXPORTER` names an exporter.

Configured by the SDK's own environment variables (`OTEL_TRACES_EXPORTER=otlp|console`,
`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...)
through opentelemetry-distro's configurator. OTLP goes over HTTP (protobuf): the gRPC exporter is
not installed. Only traces are exported; Prometheus keeps the metrics.

The API writes the Celery messages itself (`shared.kombu_messages`), so the trace context rides
in each message's headers from there (W3C `traceparent`), where Celery's instrumentation in the
worker picks it up: the upload request, the enqueue, the worker's claim, decode, preprocess,
inference and finish, and the webhook's delivery, are spans of one trace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_SDK_DISABLED,
    OTEL_SERVICE_NAME,
)

log = logging.getLogger(__name__)

tracer = trace.get_tracer("imgclf")

_configured = False


def enabled() -> bool:
    exporters = os.environ.get(OTEL_TRACES_EXPORTER, "").strip().lower()
    disabled = os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"
    return bool(exporters) and exporters != "none" and not disabled


def configure(service: str) -> bool:
    """Set up this process's tracer provider once, if tracing is on; `service` names the
    process unless OTEL_SERVICE_NAME does. Call it in the process that makes the spans (after a
    fork: a prefork child, not its parent)."""
    global _configured
    if _configured or not enabled():
        return _configured
    from opentelemetry.distro import OpenTelemetryConfigurator

    # Traces only, over the installed exporter, unless the operator says otherwise.
    os.environ.setdefault(OTEL_METRICS_EXPORTER, "none")
    os.environ.setdefault(OTEL_LOGS_EXPORTER, "none")
    os.environ.setdefault(OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf")
    attributes = {} if os.environ.get(OTEL_SERVICE_NAME) else {"service.name": service}
    OpenTelemetryConfigurator().configure(resource_attributes=attributes)  # type: ignore[no-untyped-call]
    _configured = True
    log.info("tracing on: %s spans exported by %s", service, os.environ[OTEL_TRACES_EXPORTER])
    return True


def instrument_celery(service: str) -> None:
    """Tracing for a Celery process that runs tasks: each task's span continues the trace its
    message carries."""
    if configure(service):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]


def flush() -> None:
    """Export what is buffered (a process about to exit)."""
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        force_flush()


def message_headers(of: trace.Span | None = None) -> dict[str, str]:
    """The trace context of `of` (by default, the current span) as message headers (empty
    when the span does not record)."""
    headers: dict[str, str] = {}
    propagate.inject(headers, context=None if of is None else trace.set_span_in_context(of))
    return headers


def traceparent(of: trace.Span | None = None) -> str:
    """The trace context of `of` (by default, the current span) as a `traceparent` value (''
    when the span does not record): a job keeps its submit's, for the worker's spans to
    continue."""
    return message_headers(of).get("traceparent", "")


@contextmanager
def span(name: str, job_id: str | None = None) -> Iterator[trace.Span]:
    """A span of this process's trace, made current (a no-op one while tracing is off)."""
    if not _configured:
        # Cheaper than the API's no-op span, and a job makes seven.
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(name) as current:
        if job_id is not None and current.is_recording():
            current.set_attribute("imgclf.job_id", job_id)
        yield current


def start(name: str, job_id: str, *, parent: str = "") -> trace.Span:
    """A span begun now, not made current, that the caller ends (a no-op one while tracing is
    off): in the trace `parent` (a `traceparent`) names, or in the current one where it is ''."""
    if not _configured:
        return trace.INVALID_SPAN
    context = propagate.extract({"traceparent": parent}) if parent else None
    begun = tracer.start_span(name, context=context)
    begun.set_attribute("imgclf.job_id", job_id)
    return begun


@contextmanager
def inside(current: trace.Span) -> Iterator[None]:
    """`current` made the current span for a while, without ending it."""
    with trace.use_span(current, end_on_exit=False):
        yield


@contextmanager
def spans(name: str, job_ids: Sequence[str], parents: Sequence[str]) -> Iterator[list[trace.Span]]:
    """One span per job at once (work done for several jobs together), each in the trace its
    `parents` entry names, or in the current one where that is ''."""
    started = [start(name, job_id, parent=parent)
               for job_id, parent in zip(job_ids, parents, strict=True)]  # fmt: skip
    try:
        yield started
    finally:
        for one in started:
            one.end()


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span, as the logs and OTLP write them."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")

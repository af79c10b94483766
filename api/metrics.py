"""Every metric the API exports, defined in one place, and the registries `/metrics` serves.

With several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR (`python -m api` does): each worker
process writes its samples there and whichever process answers a scrape adds them all up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import metrics_dir
from shared.errors import StoreUnavailableError
from shared.jobs import JobStore
from shared.priorities import PRIORITIES
from shared.settings import get_settings

log = logging.getLogger(__name__)

# This process group's own directory (or None): see `shared.metrics_dir`.
GROUP_DIR = metrics_dir.prepare(get_settings().prometheus_multiproc_dir, role="api")

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

# The seed's two metrics, names and labels kept exactly: dashboards and the README queries use them.
PREDICTIONS = Counter(
    "image_classifier_predictions_total",
    "Responses of POST /api/v1/predict, by HTTP status code",
    ["status"],
)
PREDICTION_SECONDS = Histogram(
    "image_classifier_prediction_seconds",
    "Latency of POST /api/v1/predict, upload to answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0),
)

JOBS_SUBMITTED = Counter(
    "imgclf_jobs_submitted_total",
    "Jobs accepted and queued, by route and model (only the models MODELS lists)",
    ["route", "model"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "imgclf_http_request_duration_seconds",
    "HTTP request latency, by method, route template and status code",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
UPLOAD_BYTES = Histogram(
    "imgclf_upload_size_bytes",
    "Size of each accepted image upload",
    buckets=(1e3, 1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2.5e7),
)

UPLOAD_MEMORY_BYTES = Gauge(
    "imgclf_api_upload_memory_bytes",
    "Bytes of uploads held in memory while their requests are parsed and submitted",
    multiprocess_mode="livesum",
)
TRANSACTION_REQUESTS = Histogram(
    "imgclf_api_transaction_requests",
    "Submits queued per Redis transaction: above 1, submits that came while the last "
    "transaction was in flight went together (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
UPLOADS_SPILLED = Counter(
    "imgclf_api_uploads_spilled_to_disk_total",
    "Uploaded files parked on disk because UPLOAD_MEMORY_BYTES was in use",
)


LOOP_LAST_SUCCESS = Gauge(
    "imgclf_loop_last_success_timestamp_seconds",
    "When a background loop last completed a pass (Unix time); the stalest process's figure",
    ["loop"],
    multiprocess_mode="livemin",
)


def loop_succeeded(loop: str) -> None:
    LOOP_LAST_SUCCESS.labels(loop=loop).set_to_current_time()


def observe_prediction(status_code: int, seconds: float) -> None:
    """Record one answered `/predict` request."""
    PREDICTIONS.labels(status=str(status_code)).inc()
    PREDICTION_SECONDS.observe(seconds)


def observe_request(*, method: str, route: str, status_code: int, seconds: float) -> None:
    HTTP_REQUEST_SECONDS.labels(method=method, route=route, status=str(status_code)).observe(
        seconds
    )


def observe_submission(route: str, model: str, sizes: list[int]) -> None:
    """Record jobs accepted by a submit route for `model`, and the size of each upload."""
    JOBS_SUBMITTED.labels(route=route, model=model).inc(len(sizes))
    for size in sizes:
        UPLOAD_BYTES.observe(size)


class QueueCollector(Collector):
    """Read at scrape time from Redis, so every API process reports the same true numbers."""

    def __init__(self, store: JobStore, models: Sequence[str]) -> None:
        """`models`: those the deployment serves (MODELS), the `model` label's only values."""
        self._store = store
        self._models = list(models)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            by_model = self._store.queued_counts(self._models)
            running = self._store.running_count()
            queued_bytes = self._store.queued_bytes()
            finished = self._store.finished_counts()
        except StoreUnavailableError:
            log.warning("metrics: Redis unavailable; queue figures left out of this scrape")
            return
        lengths = {p: sum(queued[p] for queued in by_model.values()) for p in PRIORITIES}
        yield GaugeMetricFamily(
            "imgclf_queue_length", "Jobs waiting, all priorities", value=sum(lengths.values())
        )
        by_priority = GaugeMetricFamily(
            "imgclf_queue_length_by_priority", "Jobs waiting, per priority", labels=["priority"]
        )
        for priority, length in lengths.items():
            by_priority.add_metric([priority], length)
        yield by_priority
        per_model = GaugeMetricFamily(
            "imgclf_queue_length_by_model", "Jobs waiting, per model", labels=["model"]
        )
        for model, queued in by_model.items():
            per_model.add_metric([model], sum(queued.values()))
        yield per_model
        yield GaugeMetricFamily(
            "imgclf_jobs_running", "Jobs claimed by a worker and not yet finished", value=running
        )
        yield GaugeMetricFamily(
            "imgclf_queued_image_bytes",
            "Bytes of the images of queued jobs (limit MAX_QUEUED_BYTES)",
            value=queued_bytes,
        )
        counter = CounterMetricFamily(
            "imgclf_jobs_finished",
            "Jobs that reached a terminal state, cluster-wide (kept in Redis)",
            labels=["status"],
        )
        for status, count in sorted(finished.items()):
            counter.add_metric([status], count)
        yield counter


def metrics_registry() -> CollectorRegistry:
    """This process's metrics, or every API process's when they share a multiprocess dir."""
    if GROUP_DIR is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def queue_registry(store: JobStore, models: Sequence[str]) -> CollectorRegistry:
    """Figures read from Redis at scrape time; never written to multiprocess files."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(store, models))
    return registry

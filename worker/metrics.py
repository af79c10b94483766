"""Every metric a worker node exports, defined in one place, and its HTTP endpoint.

Celery's prefork children each write samples to PROMETHEUS_MULTIPROC_DIR; the node's parent
process serves them all, added up, on WORKER_METRICS_PORT (default 9808).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from worker.outcomes import Processed

from shared import metrics_dir
from shared.settings import get_settings

log = logging.getLogger(__name__)

# This node's own directory (or None): see `shared.metrics_dir`.
GROUP_DIR = metrics_dir.prepare(get_settings().prometheus_multiproc_dir, role="worker")
# Not prometheus_client's default registry: Flower imports the worker's Celery app, and its
# /metrics (the default registry) must not export the worker's series as zeros.
WORKER_REGISTRY = CollectorRegistry(auto_describe=True)

_MS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5, 10, 30, 60, 300)

TASKS = Counter(
    "imgclf_worker_tasks_total",
    "Jobs a worker took from the queue, by outcome (succeeded, failed, skipped: nothing to do) "
    "and model",
    ["outcome", "model"],
    registry=WORKER_REGISTRY,
)
DELIVERY_JOBS = Histogram(
    "imgclf_worker_delivery_jobs",
    "Jobs per queue message a worker ran (a group, or one job)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=WORKER_REGISTRY,
)
IMAGES = Counter(
    "imgclf_worker_images_total",
    "Images classified, by model; rate() of it is images per second",
    ["model"],
    registry=WORKER_REGISTRY,
)
QUEUE_WAIT_SECONDS = Histogram(
    "imgclf_worker_queue_wait_seconds",
    "From job submission to a worker starting it",
    buckets=_WAIT_BUCKETS,
    registry=WORKER_REGISTRY,
)
END_TO_END_SECONDS = Histogram(
    "imgclf_job_end_to_end_seconds",
    "From a job's acceptance to its recorded outcome (queue wait and processing), by status",
    ["status"],
    buckets=_WAIT_BUCKETS,
    registry=WORKER_REGISTRY,
)
DECODE_SECONDS = Histogram(
    "imgclf_worker_decode_seconds",
    "Image decoding time",
    buckets=_MS_BUCKETS,
    registry=WORKER_REGISTRY,
)
PREPROCESS_SECONDS = Histogram(
    "imgclf_worker_preprocess_seconds",
    "Resize, crop and normalize time",
    buckets=_MS_BUCKETS,
    registry=WORKER_REGISTRY,
)
INFERENCE_SECONDS = Histogram(
    "imgclf_worker_inference_seconds",
    "onnxruntime inference time, by model",
    ["model"],
    buckets=_MS_BUCKETS,
    registry=WORKER_REGISTRY,
)
JPEG_FAST_PATH_FALLBACKS = Counter(
    "imgclf_worker_jpeg_fast_path_fallbacks_total",
    "Large progressive JPEGs decoded whole because the 1/8-scale cut did not apply, by reason",
    ["reason"],
    registry=WORKER_REGISTRY,
)
MODEL_LOAD_SECONDS = Gauge(
    "imgclf_worker_model_load_seconds",
    "Time the worker process took to load the model",
    multiprocess_mode="liveall",
    registry=WORKER_REGISTRY,
)
MODEL_LOADED = Gauge(
    "imgclf_worker_model_loaded",
    "Worker processes with the model loaded (summed over live processes)",
    multiprocess_mode="livesum",
    registry=WORKER_REGISTRY,
)
PROCESSES = Gauge(
    "imgclf_worker_processes",
    "Live worker processes that execute tasks",
    multiprocess_mode="livesum",
    registry=WORKER_REGISTRY,
)


RECOVERED_JOBS = Counter(
    "imgclf_recovered_jobs_total",
    "Jobs the recovery sweep put back on the queue, by why: dead_worker, overdue, lost_message",
    ["reason"],
    registry=WORKER_REGISTRY,
)
LOOP_LAST_SUCCESS = Gauge(
    "imgclf_loop_last_success_timestamp_seconds",
    "When a background loop last completed a pass (Unix time)",
    ["loop"],
    multiprocess_mode="livemax",
    registry=WORKER_REGISTRY,
)


def loop_succeeded(loop: str) -> None:
    LOOP_LAST_SUCCESS.labels(loop=loop).set_to_current_time()


def observe_model_loaded(load_seconds: float) -> None:
    MODEL_LOAD_SECONDS.set(load_seconds)
    MODEL_LOADED.set(1)
    PROCESSES.set(1)


def observe_delivery(jobs: int, processed: Sequence[Processed], *, model: str) -> None:
    """Record one message's jobs of `model` (one the node serves: the label's values stay
    bounded): how many it carried, each one's outcome and, for a classified image, where the
    time went."""
    DELIVERY_JOBS.observe(jobs)
    if skipped := jobs - len(processed):
        TASKS.labels(outcome="skipped", model=model).inc(skipped)
    for job in processed:
        _observe_job(job, model)


def _observe_job(processed: Processed, model: str) -> None:
    TASKS.labels(outcome=processed.status.value, model=model).inc()
    if processed.end_to_end_seconds is not None:
        END_TO_END_SECONDS.labels(status=processed.status.value).observe(
            processed.end_to_end_seconds
        )
    classification = processed.classification
    if classification is None:
        return
    IMAGES.labels(model=model).inc()
    QUEUE_WAIT_SECONDS.observe(processed.queue_wait_seconds)
    DECODE_SECONDS.observe(classification.decode_seconds)
    PREPROCESS_SECONDS.observe(classification.preprocess_seconds)
    INFERENCE_SECONDS.labels(model=model).observe(classification.inference_seconds)
    if classification.fallback is not None:
        JPEG_FAST_PATH_FALLBACKS.labels(reason=classification.fallback).inc()


def serve(*, port: int) -> None:
    """Start the node's metrics endpoint in the parent process, before any child forks.

    A port already in use disables the endpoint with an error in the log; the node still works.
    """
    registry = WORKER_REGISTRY
    if GROUP_DIR is None:
        log.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: metrics of prefork children are invisible. "
            "Set it (to an empty, writable directory) before starting the worker."
        )
    else:
        # Before any child forks: the samples this process made when its metrics were defined
        # (zeros, and a model-load gauge under its pid) are not a worker process's.
        metrics_dir.reset(GROUP_DIR)
        registry = CollectorRegistry()
        registry.register(_NodeCollector(GROUP_DIR))
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        log.error(
            "worker metrics endpoint disabled: port %d unavailable (%s); set "
            "WORKER_METRICS_PORT to a free port",
            port,
            exc,
        )
        return
    log.info("worker metrics on :%d", port)


class _NodeCollector(Collector):
    """Multiprocess samples of this node, after forgetting children that died abruptly."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._inner = multiprocess.MultiProcessCollector(None, str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[object]:  # type: ignore[override]
        metrics_dir.mark_dead_processes(self._directory)
        yield from self._inner.collect()  # type: ignore[no-untyped-call]

"""Per-process resources of a worker: the model, the job store and the presence heartbeat.

The model is loaded once per process after the fork (prefork children each get their own
onnxruntime session; sessions do not survive a fork), never at import and never per task.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass

import onnxruntime as ort
import redis

from shared import workers
from shared.errors import ServiceUnavailableError
from shared.jobs import JobStore
from shared.redis_client import connect
from shared.settings import Settings, get_settings
from worker import metrics
from worker.model import Classifier, load_classifier

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerProcess:
    """What one worker process holds for its whole life."""

    settings: Settings
    classifier: Classifier
    client: redis.Redis
    store: JobStore
    worker_id: str
    stop: threading.Event


_current: WorkerProcess | None = None
# glibc's malloc_trim; absent on other platforms and C libraries, where trimming is skipped.
_MALLOC_TRIM = (
    getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None)
    if sys.platform.startswith("linux")
    else None
)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_lock = threading.Lock()


def current() -> WorkerProcess:
    """This process's resources, created on first use (once per process)."""
    global _current
    with _lock:
        if _current is None:
            _current = _start(get_settings())
        return _current


def shutdown() -> None:
    """Stop the heartbeat and withdraw this process from the live-worker list."""
    global _current
    with _lock:
        if _current is None:
            return
        _current.stop.set()
        try:
            workers.leave(_current.client, _current.worker_id)
        except ServiceUnavailableError:
            log.warning("could not withdraw worker %s: Redis unavailable", _current.worker_id)
        _current = None


def trim_memory(*, above_mb: int) -> None:
    """Hand freed heap back to the OS once this process holds more than `above_mb` MB.

    Decoding a 12-megapixel photo briefly needs tens of MB; glibc keeps freed memory in its
    arenas, so without trimming each worker process would stay at its largest image's peak.
    Trimming after every job cost about 20 % throughput in page faults, hence the threshold.
    """
    if _MALLOC_TRIM is not None and _resident_mb() > above_mb:
        _MALLOC_TRIM(0)


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * _PAGE_SIZE / 2**20


def check_model(settings: Settings) -> Classifier:
    """Load the model once to prove it is usable; raises `ModelError` with a clear message."""
    return load_classifier(settings.model_path, settings.labels_path, threads=1)


def _start(settings: Settings) -> WorkerProcess:
    classifier = load_classifier(
        settings.model_path, settings.labels_path, threads=settings.ort_threads()
    )
    client = connect(settings.redis_url)
    process = WorkerProcess(
        settings=settings,
        classifier=classifier,
        client=client,
        store=JobStore(
            client, ttl_seconds=settings.job_ttl_seconds, max_attempts=settings.max_attempts
        ),
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
        stop=threading.Event(),
    )
    info = workers.WorkerInfo(
        worker_id=process.worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        model_name=classifier.name,
        model_sha256=classifier.sha256,
        runtime=f"onnxruntime {ort.__version__}",
        execution_provider=classifier.provider,
        threads=classifier.threads,
        model_load_seconds=classifier.load_seconds,
    )
    metrics.observe_model_loaded(classifier.load_seconds)
    threading.Thread(
        target=_heartbeat,
        args=(client, info, settings, process.stop),
        daemon=True,
        name="imgclf-heartbeat",
    ).start()
    log.info(
        "worker process %s loaded %s (%s, %d threads) in %.3f s",
        process.worker_id,
        classifier.name,
        classifier.provider,
        classifier.threads,
        classifier.load_seconds,
    )
    return process


def _heartbeat(
    client: redis.Redis, info: workers.WorkerInfo, settings: Settings, stop: threading.Event
) -> None:
    interval = settings.worker_heartbeat_seconds
    while True:
        try:
            workers.beat(client, info, ttl_seconds=interval * 3)
        except ServiceUnavailableError:
            log.warning("heartbeat for %s failed: Redis unavailable", info.worker_id)
        if stop.wait(interval):
            return

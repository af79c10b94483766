"""Per-process resources of a worker: its models, the job runner and the presence heartbeat.

The models (WORKER_MODELS) are loaded once per process after the fork (prefork children each get
their own onnxruntime sessions; sessions do not survive a fork), never at import and never per
task.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.synchronize
import os
import socket
import threading
from dataclasses import dataclass

import onnxruntime as ort
import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from shared import workers
from shared.errors import ServiceUnavailableError
from shared.jobs import JobStore, Keeping, Replication
from shared.kombu_messages import Lanes, classify_queues, webhook_queue
from shared.queue import make_celery
from shared.redis_client import connect
from shared.settings import Settings, get_settings
from shared.store_health import StoreHealth
from worker import metrics
from worker.memory import IdleTrimmer
from worker.model import BatchInference, Classifier, load_named
from worker.pipeline import Decoding
from worker.processing import JobRunner

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerProcess:
    """What one worker process holds for its whole life."""

    settings: Settings
    classifiers: dict[str, Classifier]
    client: redis.Redis
    runner: JobRunner
    worker_id: str
    trimmer: IdleTrimmer
    stop: threading.Event
    # The classify queues, where jobs handed back go (`JobRunner.hand_back`).
    queues: Lanes


_current: WorkerProcess | None = None
_lock = threading.Lock()
# Set in a node's main process once its Celery consumer takes messages. The processes it forked
# earlier announce themselves (the heartbeat `/ready` counts) only then: between the two, Celery
# looks for neighbour nodes for about a second, and a job sent meanwhile would just wait.
_node_consuming: multiprocessing.synchronize.Event | None = None


def expect_node_consuming() -> None:
    """In a node's main process, before it forks: hold back heartbeats until `node_consuming`."""
    global _node_consuming
    _node_consuming = multiprocessing.Event()


def node_consuming() -> None:
    if _node_consuming is not None:
        _node_consuming.set()


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


def check_models(settings: Settings) -> dict[str, Classifier]:
    """Load the node's models once to prove them usable; raises `ModelError` with a clear
    message for the first that is not."""
    return load_models(settings, threads=1, batch="off")


def load_models(
    settings: Settings, *, threads: int, batch: BatchInference
) -> dict[str, Classifier]:
    """The models WORKER_MODELS names, each loaded and checked against its card."""
    return {
        name: load_named(settings.models_dir, name, threads=threads, batch=batch)
        for name in settings.worker_model_names()
    }


def _start(settings: Settings) -> WorkerProcess:
    Image.init()  # Pillow registers its format plugins on first use: not on the first job
    classifiers = load_models(
        settings, threads=settings.ort_threads(), batch=settings.worker_batch_inference
    )
    client = connect(settings)
    worker_id = workers.new_worker_id()
    health = StoreHealth(settle_seconds=3 * settings.worker_heartbeat_seconds)
    celery = make_celery(settings)
    process = WorkerProcess(
        settings=settings,
        classifiers=classifiers,
        client=client,
        runner=_runner(settings, _store(settings, client, celery), classifiers, worker_id, health),
        worker_id=worker_id,
        trimmer=IdleTrimmer(above_mb=settings.worker_trim_above_mb),
        stop=threading.Event(),
        queues=classify_queues(settings.queue_name, celery, settings.model_names()),
    )
    for classifier in classifiers.values():
        metrics.observe_model_loaded(classifier.load_seconds)
    threading.Thread(
        target=_heartbeat,
        args=(process, _presence(worker_id, list(classifiers.values())), health),
        daemon=True,
        name="imgclf-heartbeat",
    ).start()
    threading.Thread(
        target=process.trimmer.run, args=(process.stop,), daemon=True, name="imgclf-trim"
    ).start()
    for classifier in classifiers.values():
        log.info(
            "worker process %s loaded %s %s (%s, %d threads, %s) in %.3f s",
            worker_id,
            classifier.name,
            classifier.version,
            classifier.provider,
            classifier.threads,
            "a group in one batch" if classifier.batches else "one image at a time",
            classifier.load_seconds,
        )
    return process


def _store(settings: Settings, client: redis.Redis, celery: Celery) -> JobStore:
    return JobStore(
        client,
        ttl_seconds=settings.job_ttl_seconds,
        max_attempts=settings.max_attempts,
        keeping=Keeping(
            settings.job_ttl_seconds,
            Replication(settings.replicas_to_wait_for(), settings.redis_wait_timeout_ms),
            webhook_queue(settings.webhook_queue, celery),
        ),
    )


def _runner(
    settings: Settings,
    store: JobStore,
    classifiers: dict[str, Classifier],
    worker_id: str,
    health: StoreHealth,
) -> JobRunner:
    return JobRunner(
        store=store,
        classifiers=classifiers,
        max_pixels=settings.max_image_pixels,
        worker_id=worker_id,
        decoding=Decoding(
            fast_progressive=settings.progressive_jpeg_fast_path,
            max_memory_mb=settings.worker_max_image_mb,
        ),
        soft_limit_errors=(SoftTimeLimitExceeded,),
        soft_limit_seconds=settings.task_soft_time_limit_seconds,
        store_retry_seconds=settings.store_retry_seconds,
        health=health,
    )


def _presence(worker_id: str, classifiers: list[Classifier]) -> workers.WorkerInfo:
    first = classifiers[0]
    return workers.WorkerInfo(
        worker_id=worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        model_name=first.name,
        model_sha256=first.sha256,
        models=[
            workers.ServedModel(name=c.name, version=c.version, sha256=c.sha256)
            for c in classifiers
        ],
        runtime=f"onnxruntime {ort.__version__}",
        execution_provider=first.provider,
        threads=first.threads,
        model_load_seconds=sum(c.load_seconds for c in classifiers),
        node_pid=os.getppid(),
    )


def _heartbeat(process: WorkerProcess, info: workers.WorkerInfo, health: StoreHealth) -> None:
    """Keep the process's presence alive; and, each time Redis answers, give back the jobs it
    kept this process from finishing."""
    interval, stop = process.settings.worker_heartbeat_seconds, process.stop
    consuming = _node_consuming
    while consuming is not None and not consuming.wait(timeout=0.1):
        if stop.is_set():
            return
    while True:
        try:
            workers.beat(process.client, info, ttl_seconds=interval * 3)
            given = process.runner.hand_back.give_back(
                process.runner.store, worker_id=process.worker_id, queues=process.queues
            )
            metrics.RECOVERED_JOBS.labels(reason="given_back").inc(len(given))
        except ServiceUnavailableError:
            health.failed()
            log.warning("heartbeat for %s failed: Redis unavailable", info.worker_id)
        if stop.wait(interval):
            return

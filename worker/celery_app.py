"""The worker's Celery app: `celery -A worker.celery_app worker`.

Importing this module loads no model; each worker process loads it once, after the fork.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)
from prometheus_client import multiprocess

from shared import log_format, tracing
from shared.errors import ModelError
from shared.jobs import JobStore
from shared.kombu_messages import classify_queues
from shared.queue import consume_with_freed_slots, make_celery
from shared.redis_client import check_eviction_policy, connect
from shared.settings import get_settings
from worker import lifecycle, memory, metrics, recovery, watchdog

app = make_celery(get_settings())
app.conf.imports = ("worker.tasks",)
TRACE_SERVICE = "imgclf-worker"


log_format.for_celery(get_settings().log_level, get_settings().log_format)


@worker_init.connect  # type: ignore[untyped-decorator]
def _start_node(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    consume_with_freed_slots(app, settings)
    # Checked in the parent before any child forks: a broken model stops the node with one clear
    # message instead of children crashing in a loop or failing every job.
    client = connect(settings)
    try:
        lifecycle.check_models(settings)
        check_eviction_policy(client, refuse=settings.redis_eviction_check == "refuse")
    except (ModelError, RuntimeError) as exc:
        print(f"imgclf worker refuses to start: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)
    # The checked models are gone again: hand its heap back before the children fork from this
    # process (figures: docs/PERFORMANCE.md, "Memory").
    memory.release_free_memory()
    recovery.start_sweeper(
        JobStore(client, ttl_seconds=settings.job_ttl_seconds),
        client,
        classify_queues(settings.queue_name, app, settings.model_names()),
        node=socket.gethostname(),
        settings=settings,
    )
    metrics.serve(port=settings.worker_metrics_port)
    lifecycle.expect_node_consuming()
    if "prefork" not in str(getattr(sender, "pool_cls", "prefork")).lower():
        # solo/threads pools run tasks in this very process
        tracing.instrument_celery(TRACE_SERVICE)
        lifecycle.current()


@worker_ready.connect  # type: ignore[untyped-decorator]
def _consuming(sender: Any = None, **_: Any) -> None:
    watchdog.PROGRESS.consumer = sender
    lifecycle.node_consuming()


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _load_model_in_child(**_: Any) -> None:
    tracing.instrument_celery(TRACE_SERVICE)
    lifecycle.current()


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _leave(**_: Any) -> None:
    lifecycle.shutdown()
    tracing.flush()
    if metrics.GROUP_DIR is not None:
        multiprocess.mark_process_dead(os.getpid(), str(metrics.GROUP_DIR))  # type: ignore[no-untyped-call]

"""The webhook node's Celery app: `celery -A worker.webhook_app worker -Q <QUEUE_NAME>.webhooks
--pool threads`. It loads no model: deliveries are network waits, so threads serve many at once,
and classification never waits behind a slow receiver."""

from __future__ import annotations

import functools
import logging
from typing import Any

import httpx
from celery.signals import worker_init
from standardwebhooks import Webhook

from shared import log_format, tracing
from shared.jobs import JobStore
from shared.queue import (
    COLLECTION_WEBHOOK_TASK,
    WEBHOOK_TASK,
    consume_with_freed_slots,
    make_celery,
)
from shared.redis_client import connect
from shared.settings import get_settings
from worker.webhooks import Deliverer

app = make_celery(get_settings())
app.conf.task_default_queue = get_settings().webhook_queue
log_format.for_celery(get_settings().log_level, get_settings().log_format)


log = logging.getLogger(__name__)


@worker_init.connect  # type: ignore[untyped-decorator]
def _start(**_: Any) -> None:
    consume_with_freed_slots(app, get_settings())
    tracing.instrument_celery("imgclf-webhooks")  # threads: tasks run in this process
    if get_settings().webhook_secret is None:
        log.warning("WEBHOOK_SECRET is not set: the API refuses callback_url, no webhook is sent")


@functools.cache
def deliverer() -> Deliverer | None:
    """One per process, built on first use; None without WEBHOOK_SECRET."""
    settings = get_settings()
    if settings.webhook_secret is None:
        return None
    return Deliverer(
        store=JobStore(connect(settings), ttl_seconds=settings.job_ttl_seconds),
        signer=Webhook(settings.webhook_secret.get_secret_value()),
        http=httpx.Client(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        ),
        allowed_hosts=settings.allowed_callback_hosts(),
        max_attempts=settings.webhook_max_attempts,
    )


@app.task(name=WEBHOOK_TASK)  # type: ignore[untyped-decorator]
def deliver(job_id: str) -> str | None:
    """Deliver job `job_id`'s webhook; its final state."""
    sender = deliverer()
    if sender is None:
        log.error("webhook for job %s not sent: WEBHOOK_SECRET is not set", job_id)
        return None
    state = sender.deliver(job_id)
    return state.status if state else None


@app.task(name=COLLECTION_WEBHOOK_TASK)  # type: ignore[untyped-decorator]
def deliver_collection(collection_id: str) -> str | None:
    """Deliver a done collection's webhook; its final state."""
    sender = deliverer()
    if sender is None:
        log.error("webhook for collection %s not sent: WEBHOOK_SECRET is not set", collection_id)
        return None
    state = sender.deliver_collection(collection_id)
    return state.status if state else None

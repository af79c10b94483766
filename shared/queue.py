"""The Celery application's configuration, shared by the worker that consumes and the API that
publishes (the API only sends tasks by name and never imports the model)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.settings import Settings

CLASSIFY_TASK = "imgclf.classify"


def make_celery(settings: Settings) -> Celery:
    """A Celery app that is reliable by configuration, not by luck."""
    app = Celery("imgclf", broker=settings.redis_url)
    app.conf.update(
        # JSON only: a pickle payload from anyone who can reach Redis would be code execution.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        # Results live in the job store; Celery's backend would only duplicate them.
        task_ignore_result=True,
        task_default_queue=settings.queue_name,
        # A task is acknowledged only after it ran, and requeued if its process dies mid-run.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # Fail a publish quickly when Redis is down: the API answers 503 instead of hanging.
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_concurrency=settings.worker_concurrency,
        # Task events cost three Redis publishes per job; Flower switches them on while it runs.
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


def publish_job(app: Celery, job_id: str, *, queue: str, producer: Any = None) -> None:
    """Queue the classification of `job_id`: the message carries the id, never the image.

    The task id is the job id, so Flower and the logs name tasks by the job they run.
    """
    app.send_task(CLASSIFY_TASK, args=[job_id], queue=queue, producer=producer, task_id=job_id)

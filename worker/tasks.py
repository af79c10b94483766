"""Celery tasks: thin wrappers that unpack a message and call `process_job`."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded

from shared.queue import CLASSIFY_TASK
from worker import lifecycle, metrics
from worker.celery_app import app
from worker.processing import process_job


@app.task(name=CLASSIFY_TASK)  # type: ignore[untyped-decorator]
def classify(job_id: str) -> str | None:
    """Classify the image of job `job_id`; the message carries the id, never the image."""
    process = lifecycle.current()
    with process.trimmer.job():
        processed = process_job(
            job_id,
            store=process.store,
            classifier=process.classifier,
            max_pixels=process.settings.max_image_pixels,
            worker_id=process.worker_id,
            soft_limit_errors=(SoftTimeLimitExceeded,),
        )
    status = processed.status if processed else None
    metrics.observe_task(status, processed.result if processed else None)
    return status.value if status else None

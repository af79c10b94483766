"""Celery tasks: thin wrappers that unpack a message and hand it to the process's `JobRunner`."""

from __future__ import annotations

import logging

from shared.errors import StoreUnavailableError
from shared.log_format import job_context
from shared.queue import CLASSIFY_TASK
from worker import lifecycle, metrics
from worker.celery_app import app

log = logging.getLogger(__name__)


@app.task(name=CLASSIFY_TASK)  # type: ignore[untyped-decorator]
def classify(job_id: str) -> str | None:
    """Classify the image of job `job_id`; the message carries the id, never the image."""
    process = lifecycle.current()
    with job_context(job_id), process.trimmer.job():
        try:
            processed = process.runner.process(job_id)
        except StoreUnavailableError as exc:
            # Retried already; the node's sweep puts the job back once Redis answers again.
            log.warning("job %s left to the recovery sweep: %s", job_id, exc.message)
            return None
    metrics.observe_task(processed)
    return processed.status.value if processed else None

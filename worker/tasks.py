"""Celery tasks: thin wrappers that unpack a message and hand it to the process's `JobRunner`."""

from __future__ import annotations

import logging

from celery import Task

from shared.errors import StoreUnavailableError
from shared.model_cards import ORIGINAL_MODEL
from shared.queue import CLASSIFY_TASK
from worker import lifecycle, metrics, soft_limit
from worker.celery_app import app

log = logging.getLogger(__name__)


@app.task(name=CLASSIFY_TASK, bind=True)  # type: ignore[untyped-decorator]
def classify(task: Task, *job_ids: str, model: str = ORIGINAL_MODEL) -> str:
    """Classify the images of `job_ids` (one job, or a group) with `model`; the message
    carries the ids, never the images (messages queued before models were data name no
    model: theirs is SqueezeNet)."""
    process = lifecycle.current()
    with process.trimmer.job(), soft_limit.armed():
        try:
            processed = process.runner.run(job_ids, tag=task.request.id or "", model=model)
        except StoreUnavailableError as exc:
            # Retried already; the node's sweep puts the jobs back once Redis answers again.
            log.warning("jobs %s left to the recovery sweep: %s", list(job_ids), exc.message)
            return "left to the recovery sweep"
    served = model if model in process.classifiers else "unserved"
    metrics.observe_delivery(len(job_ids), processed, model=served)
    return f"{len(processed)} of {len(job_ids)} ran"

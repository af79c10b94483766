"""Queue jobs straight into a JobStore, as the API does, for tests below the HTTP layer."""

from __future__ import annotations

from shared.jobs import JobStore, NewJob, QueueLimits
from shared.kombu_messages import classify_queues
from shared.queue import make_celery
from shared.schemas import Job
from shared.settings import Settings

QUEUES = classify_queues("imgclf", make_celery(Settings()))
QUEUE = QUEUES["normal"]
NEW = NewJob(filename="a.jpg", content_type="image/jpeg", size_bytes=1, width=1, height=1, top_k=1)


def queue_job(store: JobStore, job: NewJob = NEW, image: bytes = b"x") -> Job:
    (queued,) = store.enqueue([(job, image)], queue=QUEUE, limits=QueueLimits(10_000))
    return queued

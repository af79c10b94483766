"""Queue jobs straight into a JobStore, as the API does, for tests below the HTTP layer."""

from __future__ import annotations

import base64
import json

import redis

from shared.jobs import Delivery, JobStore, NewJob, QueueLimits
from shared.kombu_messages import ClassifyQueue, classify_queues
from shared.queue import make_celery
from shared.schemas import Job
from shared.settings import Settings

QUEUES = classify_queues("imgclf", make_celery(Settings()))
QUEUE = QUEUES["normal"]
NEW = NewJob(filename="a.jpg", content_type="image/jpeg", size_bytes=1, width=1, height=1, top_k=1)


def queue_job(store: JobStore, job: NewJob = NEW, image: bytes = b"x") -> Job:
    (queued,) = store.enqueue([(job, image)], queues=QUEUES, limits=QueueLimits(10_000))
    return queued


def next_delivery(client: redis.Redis, queue: ClassifyQueue = QUEUE) -> Delivery:
    """The oldest message of `queue`, taken as a worker would: its jobs and tag."""
    message = json.loads(client.rpop(queue.name))
    job_ids = json.loads(base64.b64decode(message["body"]))[0]
    return Delivery(job_ids, message["headers"]["id"])

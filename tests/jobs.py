"""Queue jobs straight into a JobStore, as the API does, for tests below the HTTP layer."""

from __future__ import annotations

import base64
import json

import redis

from shared.jobs import Delivery, JobStore, NewJob, QueueLimits
from shared.kombu_messages import ClassifyQueue, classify_queues
from shared.model_cards import ORIGINAL_MODEL
from shared.queue import make_celery
from shared.schemas import Job
from shared.settings import Settings

# SqueezeNet's lanes and those of a second model (`tests.models`).
QUEUES = classify_queues("imgclf", make_celery(Settings()), [ORIGINAL_MODEL, "superclass"])
QUEUE = QUEUES.queue(ORIGINAL_MODEL, "normal")
NEW = NewJob(filename="a.jpg", content_type="image/jpeg", size_bytes=1, width=1, height=1, top_k=1)


def queue_job(store: JobStore, job: NewJob = NEW, image: bytes = b"x") -> Job:
    (queued,) = store.enqueue([(job, image)], queues=QUEUES, limits=QueueLimits(10_000))
    return queued


def next_delivery(client: redis.Redis, queue: ClassifyQueue = QUEUE) -> Delivery:
    """The oldest message of `queue`, taken as a worker would: its jobs and tag."""
    message = json.loads(client.rpop(queue.name))
    job_ids, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    return Delivery(job_ids, message["headers"]["id"], kwargs.get("model", ORIGINAL_MODEL))

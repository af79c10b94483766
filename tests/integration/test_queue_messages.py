"""The job store writes Celery messages itself; they must be exactly what kombu would write."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from shared.jobs import JobStore, NewJob, QueueLimits
from shared.kombu_messages import ClassifyQueue
from shared.queue import make_celery
from shared.settings import Settings
from tests.processes import RedisServer

pytestmark = pytest.mark.integration

# Differ per message by design: fresh ids, and kombu's reply queue for results we never read.
PER_MESSAGE = {("properties", "delivery_tag"), ("properties", "reply_to")}


def test_enqueued_message_matches_what_kombu_publishes(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    app = make_celery(Settings(redis_url=redis_server.url))
    ours, kombus = ClassifyQueue("ours", app), ClassifyQueue("kombus", app)
    store = JobStore(client, ttl_seconds=60)
    new = NewJob(filename="a", content_type="image/jpeg", size_bytes=1, width=1, height=1, top_k=1)
    (job,) = store.enqueue([(new, b"x")], queue=ours, limits=QueueLimits(10))
    app.send_task(
        "imgclf.classify", args=[job.job_id], task_id=job.job_id, queue=kombus.name,
        ignore_result=True,
    )  # fmt: skip

    (mine,) = (json.loads(m) for m in client.lrange(ours.name, 0, -1))
    (theirs,) = (json.loads(m) for m in client.lrange(kombus.name, 0, -1))
    theirs["properties"]["delivery_info"]["routing_key"] = ours.name
    assert _flatten(mine).keys() == _flatten(theirs).keys()
    assert {k: v for k, v in _flatten(mine).items() if k not in PER_MESSAGE} == {
        k: v for k, v in _flatten(theirs).items() if k not in PER_MESSAGE
    }
    client.delete(ours.name, kombus.name)


def _flatten(message: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in message.items():
        if isinstance(value, dict) and value:
            flat |= _flatten(value, (*prefix, key))
        else:
            flat[(*prefix, key)] = value
    return flat

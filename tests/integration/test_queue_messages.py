"""The job store writes Celery messages itself; they must be exactly what kombu would write."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from shared.jobs import Grouping, JobStore, NewJob, QueueLimits
from shared.kombu_messages import ClassifyQueue, Lanes
from shared.model_cards import ORIGINAL_MODEL
from shared.queue import make_celery
from shared.settings import Settings
from tests.processes import RedisServer

pytestmark = pytest.mark.integration

# Differ per message by design: fresh ids, and kombu's reply queue for results we never read.
PER_MESSAGE = {("properties", "delivery_tag"), ("properties", "reply_to")}


@pytest.mark.parametrize("model", [ORIGINAL_MODEL, "superclass"])
@pytest.mark.parametrize("jobs", [1, 3], ids=["one job", "a group"])
def test_enqueued_message_matches_what_kombu_publishes(
    redis_server: RedisServer, jobs: int, model: str
) -> None:
    """A group's message is the same task with every job id as an argument, its own task id,
    and its jobs' time limits added up; the model is the task's keyword argument."""
    client = redis.Redis.from_url(redis_server.url)
    settings = Settings(redis_url=redis_server.url)
    app = make_celery(settings)
    lanes = Lanes("ours", app, [ORIGINAL_MODEL, "superclass"])
    ours, kombus = lanes.queue(model, "normal"), ClassifyQueue("kombus", app)
    store = JobStore(client, ttl_seconds=60)
    new = NewJob(filename="a", content_type="image/jpeg", size_bytes=1, width=1, height=1,
                 top_k=1, model=model)  # fmt: skip
    queued = store.enqueue([(new, b"x")] * jobs, queues=lanes,
                           limits=QueueLimits(10), grouping=Grouping(max_jobs=16))  # fmt: skip
    ids = [job.job_id for job in queued]
    (mine,) = (json.loads(m) for m in client.lrange(ours.name, 0, -1))
    tag = mine["headers"]["id"]
    assert tag == ids[0] if jobs == 1 else tag not in ids
    limits = {}
    if jobs > 1:
        limits = {"time_limit": settings.task_time_limit_seconds * jobs,
                  "soft_time_limit": settings.task_soft_time_limit_seconds * jobs}  # fmt: skip
    app.send_task("imgclf.classify", args=ids, kwargs={"model": model}, task_id=tag,
                  queue=kombus.name, ignore_result=True, **limits)  # fmt: skip

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

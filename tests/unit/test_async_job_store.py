"""The API's asyncio job store writes exactly what the blocking store and the workers expect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import fakeredis
import pytest

from shared.errors import JobNotFoundError, QueueFullError
from shared.jobs import AsyncJobStore, JobStore, NewJob, QueueLimits, image_key
from shared.schemas import JobStatus
from tests.jobs import QUEUE

pytestmark = pytest.mark.unit

T = TypeVar("T")
NEW = NewJob(
    filename="cat.jpg", content_type="image/jpeg", size_bytes=3, width=4, height=5, top_k=3
)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(client, ttl_seconds=60)


def async_store(server: fakeredis.FakeServer) -> AsyncJobStore:
    # One client per event loop: each test step runs in its own `asyncio.run`.
    return AsyncJobStore(fakeredis.FakeAsyncRedis(server=server), ttl_seconds=60)


def test_submitted_jobs_are_queued_with_their_images_and_claimable_by_a_worker(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, store: JobStore
) -> None:
    jobs = run(
        async_store(server).enqueue([(NEW, b"a"), (NEW, b"b")], queue=QUEUE, limits=QueueLimits(10))
    )
    messages = [json.loads(m) for m in reversed(client.lrange(QUEUE.name, 0, -1))]
    assert [m["headers"]["id"] for m in messages] == [job.job_id for job in jobs]
    assert client.get(image_key(jobs[1].job_id)) == b"b"
    assert client.ttl(image_key(jobs[1].job_id)) == 60
    claim = store.claim(jobs[0].job_id, worker_id="w")
    assert claim is not None
    assert (claim.image, claim.top_k) == (b"a", 3)
    read = run(async_store(server).get(jobs[1].job_id))
    assert (read.status, read.filename, read.width) == (JobStatus.QUEUED, "cat.jpg", 4)


def test_a_submission_over_the_queue_limit_stores_nothing(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis
) -> None:
    run(async_store(server).enqueue([(NEW, b"a")], queue=QUEUE, limits=QueueLimits(2)))
    with pytest.raises(QueueFullError, match=r"1 jobs waiting, limit 2"):
        run(
            async_store(server).enqueue(
                [(NEW, b"b"), (NEW, b"c")], queue=QUEUE, limits=QueueLimits(2)
            )
        )
    assert client.llen(QUEUE.name) == 1
    assert len(client.keys("imgclf:job:*")) == 1
    assert len(client.keys("imgclf:image:*")) == 1


def test_submissions_work_after_redis_lost_its_scripts(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis
) -> None:
    run(async_store(server).enqueue([(NEW, b"a")], queue=QUEUE, limits=QueueLimits(10)))
    client.script_flush()  # what a Redis restart does
    (job,) = run(async_store(server).enqueue([(NEW, b"b")], queue=QUEUE, limits=QueueLimits(10)))
    assert client.llen(QUEUE.name) == 2
    assert client.get(image_key(job.job_id)) == b"b"


def test_an_unknown_job_is_not_found(server: fakeredis.FakeServer) -> None:
    with pytest.raises(JobNotFoundError):
        run(async_store(server).get("00000000-0000-0000-0000-000000000000"))

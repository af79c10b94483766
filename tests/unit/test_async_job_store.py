"""The API's asyncio job store writes exactly what the blocking store and the workers expect."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import fakeredis
import pytest

from shared.errors import ImgclfError, JobNotFoundError, QueueFullError
from shared.jobs import (
    AsyncJobStore,
    Delivery,
    JobStore,
    NewJob,
    QueueLimits,
    Request,
    image_key,
)
from shared.jobs.groups import ONE_EACH, Grouping
from shared.schemas import Job, JobStatus
from tests.jobs import QUEUE, QUEUES

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


def enqueue(
    server: fakeredis.FakeServer,
    *uploads: list[tuple[NewJob, bytes]],
    limits: QueueLimits,
    grouping: Grouping = ONE_EACH,
) -> list[list[Job] | ImgclfError]:
    """One transaction of one request per `uploads`."""
    requests = [Request(each) for each in uploads]
    return run(
        async_store(server).enqueue(requests, queues=QUEUES, limits=limits, grouping=grouping)
    )


def enqueue_one(
    server: fakeredis.FakeServer, uploads: list[tuple[NewJob, bytes]], *, limits: QueueLimits
) -> list[Job]:
    (outcome,) = enqueue(server, uploads, limits=limits)
    if isinstance(outcome, ImgclfError):
        raise outcome
    return outcome


def test_submitted_jobs_are_queued_with_their_images_and_claimable_by_a_worker(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, store: JobStore
) -> None:
    jobs = enqueue_one(server, [(NEW, b"a"), (NEW, b"b")], limits=QueueLimits(10))
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
    enqueue_one(server, [(NEW, b"a")], limits=QueueLimits(2))
    with pytest.raises(QueueFullError, match=r"1 jobs waiting, limit 2"):
        enqueue_one(server, [(NEW, b"b"), (NEW, b"c")], limits=QueueLimits(2))
    assert client.llen(QUEUE.name) == 1
    assert len(client.keys("imgclf:job:*")) == 1
    assert len(client.keys("imgclf:image:*")) == 1


def test_submissions_work_after_redis_lost_its_scripts(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis
) -> None:
    enqueue_one(server, [(NEW, b"a")], limits=QueueLimits(10))
    client.script_flush()  # what a Redis restart does
    (job,) = enqueue_one(server, [(NEW, b"b")], limits=QueueLimits(10))
    assert client.llen(QUEUE.name) == 2
    assert client.get(image_key(job.job_id)) == b"b"


def test_an_unknown_job_is_not_found(server: fakeredis.FakeServer) -> None:
    with pytest.raises(JobNotFoundError):
        run(async_store(server).get("00000000-0000-0000-0000-000000000000"))


def test_requests_that_come_together_share_messages_and_keep_their_own_outcomes(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, store: JobStore
) -> None:
    """Three requests in one transaction: the one over the queue limit is refused alone, the
    others' jobs travel in one message and are claimed together; the message names the refused
    request's jobs too, which do not exist, and the claim skips them."""
    small, large, other = (
        Request([(NEW, b"a")]),
        Request([(NEW, b"b")] * 3),
        Request([(NEW, b"c"), (NEW, b"d")]),
    )
    together = async_store(server).enqueue(
        [small, large, other], queues=QUEUES, limits=QueueLimits(3), grouping=Grouping(max_jobs=16)
    )
    first, refused, last = run(together)
    assert isinstance(refused, QueueFullError)
    assert isinstance(first, list)
    assert isinstance(last, list)
    (message,) = [json.loads(m) for m in client.lrange(QUEUE.name, 0, -1)]
    carried = json.loads(base64.b64decode(message["body"]))[0]
    assert carried == [*small.job_ids, *large.job_ids, *other.job_ids]
    assert len(client.keys("imgclf:job:*")) == 3
    claimed = store.claim_group(Delivery(carried, message["headers"]["id"]), worker_id="w")
    assert [claim.job_id for claim in claimed.jobs] == [*small.job_ids, *other.job_ids]
    assert [claim.image for claim in claimed.jobs] == [b"a", b"c", b"d"]

"""Long-polls wake on a job's finish event and answer with the job it carries."""

from __future__ import annotations

import asyncio
import io
import json

import fakeredis
import pytest
from fastapi import UploadFile

from api.committer import Committer
from api.events import JobEvents
from api.service import JobService
from api.submissions import SubmitOptions
from shared.jobs import AsyncJobStore, Grouping, JobStore, QueueLimits
from shared.schemas import Job, JobResult, JobStatus, ModelRef, Prediction, Timings
from shared.settings import Settings
from tests.images import encode, gradient
from tests.jobs import QUEUE, queue_job

pytestmark = pytest.mark.unit

RESULT = JobResult(
    predictions=[Prediction(class_id=208, label="Labrador retriever", probability=0.7)],
    model=ModelRef(name="SqueezeNet 1.1", sha256="x"),
    timings=Timings(queue_wait_ms=1, decode_ms=1, preprocess_ms=1, inference_ms=1),
)


class CountingReads:
    """The API's job reads, counted, over a blocking store."""

    def __init__(self, store: JobStore) -> None:
        self.store, self.reads = store, 0

    async def get(self, job_id: str) -> Job:
        self.reads += 1
        return self.store.get(job_id)


def service_over(store: object, events: JobEvents) -> JobService:
    """The API's service with its store and event listener replaced (nothing connects)."""
    service = JobService(Settings())
    service.store, service.events = store, events  # type: ignore[assignment]
    service.committer = Committer(
        store,  # type: ignore[arg-type]
        queues=service.queues,
        limits=QueueLimits(10_000),
        grouping=Grouping(),
    )
    return service


def finish_announcement(store: JobStore, client: fakeredis.FakeRedis, job_id: str) -> str:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("imgclf:events")
    pubsub.get_message(timeout=0.1)
    store.claim(job_id)
    store.succeed(job_id, RESULT)
    message = pubsub.get_message(timeout=1)
    assert message is not None
    return str(message["data"].decode())


def test_a_long_poll_answers_with_the_announced_job_without_reading_it_again() -> None:
    client = fakeredis.FakeRedis()
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store)
    reads = CountingReads(store)
    events = JobEvents(client)  # type: ignore[arg-type]  # its listener is not started here

    async def scenario() -> Job:
        waiting = asyncio.create_task(
            service_over(reads, events).wait_for([job.job_id], wait_seconds=10)
        )
        await asyncio.sleep(0.05)  # the request reads the queued job, then waits
        events.notify(finish_announcement(store, client, job.job_id))
        (done,) = await asyncio.wait_for(waiting, timeout=2)
        return done

    done = asyncio.run(scenario())
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == RESULT
    assert done == store.get(job.job_id)
    assert reads.reads == 1


def test_a_bare_job_id_event_wakes_the_long_poll_which_reads_the_job() -> None:
    client = fakeredis.FakeRedis()
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store)
    reads = CountingReads(store)
    events = JobEvents(client)  # type: ignore[arg-type]

    async def scenario() -> Job:
        waiting = asyncio.create_task(
            service_over(reads, events).wait_for([job.job_id], wait_seconds=10)
        )
        await asyncio.sleep(0.05)
        finish_announcement(store, client, job.job_id)
        events.notify(job.job_id)  # as a worker of an older release announces it
        (done,) = await asyncio.wait_for(waiting, timeout=1)
        return done

    assert asyncio.run(scenario()).status is JobStatus.SUCCEEDED
    assert reads.reads == 2


def test_submit_and_wait_answers_from_the_finish_event_without_reading_the_job() -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    store = JobStore(client, ttl_seconds=60)
    events = JobEvents(client)  # type: ignore[arg-type]
    data = encode(gradient(), "JPEG")

    class CountingStore(AsyncJobStore):
        reads = 0

        async def get(self, job_id: str) -> Job:
            self.reads += 1
            return await super().get(job_id)

    async_store = CountingStore(fakeredis.FakeAsyncRedis(server=server), ttl_seconds=60)

    async def scenario() -> Job:
        upload = UploadFile(io.BytesIO(data), size=len(data), filename="g.jpg")
        waiting = asyncio.create_task(
            service_over(async_store, events).submit_and_wait(
                [upload], options=SubmitOptions(top_k=2, wait=10), route="jobs"
            )
        )
        for _ in range(200):  # a worker takes the job as soon as it is queued
            message = client.rpop(QUEUE.name)
            if message is not None:
                break
            await asyncio.sleep(0.01)
        job_id = json.loads(message)["headers"]["id"]
        events.notify(finish_announcement(store, client, job_id))
        (done,) = await asyncio.wait_for(waiting, timeout=2)
        return done

    done = asyncio.run(scenario())
    assert (done.status, done.filename, done.top_k) == (JobStatus.SUCCEEDED, "g.jpg", 2)
    assert done.result == RESULT
    assert async_store.reads == 0

from __future__ import annotations

import json
import time

import fakeredis
import pytest

from shared import workers
from shared.jobs import JobStore
from shared.schemas import JobStatus
from tests.jobs import NEW, QUEUE, QUEUES, queue_job
from worker.recovery import sweep

pytestmark = pytest.mark.unit


def _info(worker_id: str) -> workers.WorkerInfo:
    return workers.WorkerInfo(
        worker_id=worker_id,
        hostname="h",
        pid=1,
        model_name="m",
        model_sha256="s",
        runtime="r",
        execution_provider="CPU",
        threads=1,
        model_load_seconds=0.1,
    )


def _task_id(message: bytes) -> str:
    task_id: str = json.loads(message)["headers"]["id"]
    return task_id


def test_sweep_requeues_only_jobs_of_dead_worker_processes(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    orphan, healthy = queue_job(store, NEW, b"x"), queue_job(store, NEW, b"y")
    store.claim(orphan.job_id, worker_id="host:111")
    store.claim(healthy.job_id, worker_id="host:222")
    workers.beat(client, _info("host:222"), ttl_seconds=10)
    client.delete(QUEUE.name)  # both messages were consumed when the jobs were claimed

    assert sweep(store, client, QUEUES) == [orphan.job_id]
    assert [_task_id(m) for m in client.lrange(QUEUE.name, 0, -1)] == [orphan.job_id]
    assert store.get(orphan.job_id).status is JobStatus.QUEUED
    assert store.get(healthy.job_id).status is JobStatus.RUNNING
    assert store.running_count() == 1


def test_requeue_leaves_a_job_reclaimed_by_another_process(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store, NEW, b"x")
    store.claim(job.job_id, worker_id="host:1")
    store.claim(job.job_id, worker_id="host:2")  # redelivered to a live process meanwhile
    assert not store.requeue_orphan(job.job_id, worker_id="host:1", queues=QUEUES)
    assert store.get(job.job_id).status is JobStatus.RUNNING


def test_sweep_forgets_running_entries_of_expired_jobs(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store, NEW, b"x")
    store.claim(job.job_id, worker_id="host:1")
    client.delete(f"imgclf:job:{job.job_id}")
    assert sweep(store, client, QUEUES) == []
    assert store.running_count() == 0


def test_job_whose_workers_keep_dying_fails_with_worker_lost(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60, max_attempts=2)
    job = queue_job(store, NEW, b"x")
    assert store.claim(job.job_id, worker_id="a") is not None
    assert store.claim(job.job_id, worker_id="b") is not None
    assert store.claim(job.job_id, worker_id="c") is None
    failed = store.get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "worker_lost"


def test_a_queued_job_whose_message_was_lost_is_published_again(
    client: fakeredis.FakeRedis,
) -> None:
    """kombu pops a message, then records it as unacked: a reset in between loses it."""
    store = JobStore(client, ttl_seconds=60)
    lost, delivered, in_flight, waiting = [], [], [], []
    for bucket in (lost, in_flight, delivered, waiting):
        bucket.append(queue_job(store, NEW, b"x").job_id)
        time.sleep(0.005)  # distinct queue times, on Redis's clock
    for _ in range(3):  # the three oldest messages were popped ...
        message = client.rpop(QUEUE.name)
        if _task_id(message) == in_flight[0]:  # ... one is held by a consumer as unacked
            client.hset("unacked", in_flight[0], message)
    workers.beat(client, _info("host:1"), ttl_seconds=60)
    store.claim(delivered[0], worker_id="host:1")  # a job queued after `lost` has started

    assert sweep(store, client, QUEUES, lost_grace_seconds=0) == lost
    assert [_task_id(m) for m in client.lrange(QUEUE.name, 0, -1)] == [lost[0], waiting[0]]
    assert sweep(store, client, QUEUES, lost_grace_seconds=0) == []  # published once
    assert store.get(lost[0]).status is JobStatus.QUEUED


def test_a_lost_message_is_not_republished_within_its_grace(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store, NEW, b"x")
    client.delete(QUEUE.name)
    assert sweep(store, client, QUEUES, lost_grace_seconds=60) == []
    assert sweep(store, client, QUEUES, lost_grace_seconds=0) == [job.job_id]


def test_a_job_running_past_the_hard_time_limit_is_requeued_though_its_owner_lives(
    client: fakeredis.FakeRedis,
) -> None:
    """Celery's hard limit would have ended it: its process gave up (a store error) or hangs."""
    store = JobStore(client, ttl_seconds=60)
    stuck, fresh = queue_job(store, NEW, b"x"), queue_job(store, NEW, b"y")
    workers.beat(client, _info("host:1"), ttl_seconds=60)
    store.claim(stuck.job_id, worker_id="host:1")
    store.claim(fresh.job_id, worker_id="host:1")
    client.hset(f"imgclf:job:{stuck.job_id}", "claimed_ms", 0)
    client.delete(QUEUE.name)
    assert sweep(store, client, QUEUES, max_running_seconds=100) == [stuck.job_id]
    assert store.get(fresh.job_id).status is JobStatus.RUNNING

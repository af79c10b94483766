from __future__ import annotations

import json

import fakeredis
import pytest

from shared import workers
from shared.jobs import JobStore
from shared.schemas import JobStatus
from tests.jobs import NEW, QUEUE, queue_job
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


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_sweep_requeues_only_jobs_of_dead_worker_processes(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    orphan, healthy = queue_job(store, NEW, b"x"), queue_job(store, NEW, b"y")
    store.claim(orphan.job_id, worker_id="host:111")
    store.claim(healthy.job_id, worker_id="host:222")
    workers.beat(client, _info("host:222"), ttl_seconds=10)
    client.delete(QUEUE.name)  # both messages were consumed when the jobs were claimed

    assert sweep(store, client, QUEUE) == [orphan.job_id]
    assert [_task_id(m) for m in client.lrange(QUEUE.name, 0, -1)] == [orphan.job_id]
    assert store.get(orphan.job_id).status is JobStatus.QUEUED
    assert store.get(healthy.job_id).status is JobStatus.RUNNING
    assert store.running_count() == 1


def test_requeue_leaves_a_job_reclaimed_by_another_process(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store, NEW, b"x")
    store.claim(job.job_id, worker_id="host:1")
    store.claim(job.job_id, worker_id="host:2")  # redelivered to a live process meanwhile
    assert not store.requeue_orphan(job.job_id, worker_id="host:1", queue=QUEUE)
    assert store.get(job.job_id).status is JobStatus.RUNNING


def test_sweep_forgets_running_entries_of_expired_jobs(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = queue_job(store, NEW, b"x")
    store.claim(job.job_id, worker_id="host:1")
    client.delete(f"imgclf:job:{job.job_id}")
    assert sweep(store, client, QUEUE) == []
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

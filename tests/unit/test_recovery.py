from __future__ import annotations

import fakeredis
import pytest

from shared import workers
from shared.jobs import JobStore, NewJob
from shared.schemas import JobStatus
from worker.recovery import sweep

pytestmark = pytest.mark.unit

NEW = NewJob(filename="a.jpg", content_type="image/jpeg", size_bytes=1, width=1, height=1, top_k=1)


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


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def test_sweep_requeues_only_jobs_of_dead_worker_processes(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    orphan, healthy = store.create(NEW, b"x"), store.create(NEW, b"y")
    store.claim(orphan.job_id, worker_id="host:111")
    store.claim(healthy.job_id, worker_id="host:222")
    workers.beat(client, _info("host:222"), ttl_seconds=10)
    published: list[str] = []

    assert sweep(store, client, published.append) == [orphan.job_id]
    assert published == [orphan.job_id]
    assert store.get(orphan.job_id).status is JobStatus.QUEUED
    assert store.get(healthy.job_id).status is JobStatus.RUNNING
    assert store.running_count() == 1


def test_requeue_leaves_a_job_reclaimed_by_another_process(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = store.create(NEW, b"x")
    store.claim(job.job_id, worker_id="host:1")
    store.claim(job.job_id, worker_id="host:2")  # redelivered to a live process meanwhile
    assert not store.requeue_orphan(job.job_id, worker_id="host:1")
    assert store.get(job.job_id).status is JobStatus.RUNNING


def test_sweep_forgets_running_entries_of_expired_jobs(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60)
    job = store.create(NEW, b"x")
    store.claim(job.job_id, worker_id="host:1")
    client.delete(f"imgclf:job:{job.job_id}")
    assert sweep(store, client, lambda _: None) == []
    assert store.running_count() == 0


def test_job_whose_workers_keep_dying_fails_with_worker_lost(client: fakeredis.FakeRedis) -> None:
    store = JobStore(client, ttl_seconds=60, max_attempts=2)
    job = store.create(NEW, b"x")
    assert store.claim(job.job_id, worker_id="a") is not None
    assert store.claim(job.job_id, worker_id="b") is not None
    assert store.claim(job.job_id, worker_id="c") is None
    failed = store.get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "worker_lost"


def test_memory_is_trimmed_only_above_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker import lifecycle

    calls: list[int] = []
    monkeypatch.setattr(lifecycle, "_MALLOC_TRIM", calls.append)
    lifecycle.trim_memory(above_mb=10**6)
    assert calls == []
    lifecycle.trim_memory(above_mb=0)
    assert calls == [0]

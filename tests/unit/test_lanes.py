"""Each model's queue is its own: its cap, its counts, its recovery (a lane per priority)."""

from __future__ import annotations

import json

import fakeredis
import pytest

from shared import workers
from shared.errors import QueueFullError
from shared.jobs import Delivery, JobStore, NewJob, QueueLimits
from shared.schemas import JobStatus
from shared.workers import WorkerInfo
from tests.jobs import NEW, QUEUES, next_delivery
from worker.recovery import sweep

pytestmark = pytest.mark.unit
OTHER = "superclass"
OTHERS = NEW.model_copy(update={"model": OTHER})


def _queue(store: JobStore, job: NewJob, count: int = 1, cap: int = 100) -> list[str]:
    jobs = store.enqueue([(job, b"x")] * count, queues=QUEUES, limits=QueueLimits(cap))
    return [j.job_id for j in jobs]


def test_a_full_queue_of_one_model_leaves_the_others_open(store: JobStore) -> None:
    """A model no worker serves fills its own queue, not the default model's."""
    _queue(store, OTHERS, count=2, cap=2)
    with pytest.raises(QueueFullError):
        _queue(store, OTHERS, cap=2)
    assert len(_queue(store, NEW, count=2, cap=2)) == 2
    counts = store.queued_counts(["squeezenet", OTHER])
    assert counts == {
        "squeezenet": {"high": 0, "normal": 2, "low": 0},
        OTHER: {"high": 0, "normal": 2, "low": 0},
    }


def test_a_models_jobs_travel_on_its_own_queue_naming_it(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    (job_id,) = _queue(store, OTHERS)
    (high,) = store.enqueue([(OTHERS.model_copy(update={"priority": "high"}), b"x")],
                            queues=QUEUES, limits=QueueLimits(10))  # fmt: skip
    assert client.llen("imgclf") == 0
    assert client.llen("imgclf.superclass.high") == 1
    delivery = next_delivery(client, QUEUES.queue(OTHER, "normal"))
    assert (delivery.job_ids, delivery.model) == ([job_id], OTHER)
    assert high.job_id not in delivery.job_ids


def test_cancel_takes_a_job_off_its_models_count(store: JobStore) -> None:
    (job_id,) = _queue(store, OTHERS)
    assert store.cancel(job_id).status is JobStatus.CANCELED
    assert store.queued_counts([OTHER])[OTHER]["normal"] == 0


def test_a_waiting_model_is_not_taken_for_lost_by_another_models_progress(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """A model's job waits with its message in its queue while another model's later jobs
    are claimed: each lane's watermark is its own, so the sweep republishes nothing."""
    (waiting,) = _queue(store, OTHERS)
    _queue(store, NEW)  # queued after it, claimed first
    delivery = next_delivery(client, QUEUES.queue("squeezenet", "normal"))
    store.claim_group(delivery, worker_id="host:1:a")
    info = WorkerInfo(worker_id="host:1:a", hostname="host", pid=1, model_name="squeezenet",
                      model_sha256="s", runtime="r", execution_provider="CPU", threads=1,
                      model_load_seconds=0.1)  # fmt: skip
    workers.beat(client, info, ttl_seconds=60)
    assert sweep(store, client, QUEUES, lost_grace_seconds=0) == []
    assert client.llen("imgclf.superclass") == 1
    client.delete("imgclf.superclass")  # now its message is lost
    assert sweep(store, client, QUEUES, lost_grace_seconds=0) == [waiting]
    (message,) = client.lrange("imgclf.superclass", 0, -1)
    assert json.loads(message)["headers"]["id"] == waiting


def test_a_dead_workers_job_goes_back_to_its_models_queue(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    (job_id,) = _queue(store, OTHERS)
    client.delete("imgclf.superclass")
    store.claim_group(Delivery([job_id], job_id, OTHER), worker_id="gone:1:a")
    assert store.requeue_orphan(job_id, worker_id="gone:1:a", queues=QUEUES) == 1
    assert store.get(job_id).status is JobStatus.QUEUED
    assert client.llen("imgclf.superclass") == 1
    assert client.llen("imgclf") == 0
    assert store.queued_counts([OTHER])[OTHER]["normal"] == 1

"""Jobs that travel together in one queue message: how groups form, and every per-job rule of
the store holding for each job of a group (claim, cancel, attempts, recovery)."""

from __future__ import annotations

import base64
import json

import fakeredis
import pytest

from shared import workers
from shared.jobs import Delivery, JobStore, NewJob, QueueLimits
from shared.jobs.groups import Grouping, plan
from shared.model_cards import ORIGINAL_MODEL
from shared.schemas import JobStatus
from tests.jobs import NEW, QUEUE, QUEUES, next_delivery
from tests.unit.test_recovery import _info
from worker.recovery import sweep

pytestmark = pytest.mark.unit

HIGH = NEW.model_copy(update={"priority": "high"})


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(client, ttl_seconds=60, max_attempts=2)


def _carried(message: bytes) -> list[str]:
    args: list[str] = json.loads(base64.b64decode(json.loads(message)["body"]))[0]
    return args


def _group(store: JobStore, count: int, job: NewJob = NEW) -> list[str]:
    jobs = store.enqueue([(job, b"x")] * count, queues=QUEUES, limits=QueueLimits(1000),
                         grouping=Grouping(max_jobs=16))  # fmt: skip
    return [queued.job_id for queued in jobs]


def test_groups_fill_in_order_within_their_caps_and_never_mix_priorities() -> None:
    jobs = [("a", "normal", 10), ("b", "high", 10), ("c", "normal", 10), ("d", "normal", 31),
            ("e", "normal", 1), ("f", "normal", 1), ("g", "normal", 1)]  # fmt: skip
    groups, member_of = plan(jobs, Grouping(max_jobs=3, max_bytes=50))
    assert [(g.priority, g.job_ids) for g in groups] == [
        ("normal", ["a", "c"]),  # d would pass 50 bytes
        ("high", ["b"]),
        ("normal", ["d", "e", "f"]),
        ("normal", ["g"]),  # three jobs at most
    ]
    assert member_of == [0, 1, 0, 2, 2, 2, 3]
    assert groups[1].tag == "b"  # a group of one is named by its job
    assert len({g.tag for g in groups}) == 4


def test_a_group_is_one_message_and_one_claim_and_skips_a_canceled_member(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    ids = _group(store, 4)
    (message,) = client.lrange(QUEUE.name, 0, -1)
    assert _carried(message) == ids
    assert (
        store.queued_counts([ORIGINAL_MODEL])[ORIGINAL_MODEL]["normal"] == 4
    )  # jobs waiting, not messages
    store.cancel(ids[1])
    claimed = store.claim_group(next_delivery(client), worker_id="w")
    assert [claim.job_id for claim in claimed.jobs] == [ids[0], ids[2], ids[3]]
    assert store.get(ids[1]).status is JobStatus.CANCELED
    assert store.queued_counts([ORIGINAL_MODEL])[ORIGINAL_MODEL]["normal"] == 0


def test_a_batch_is_split_by_priority_into_messages_of_its_own_queue(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    high = _group(store, 2, HIGH)
    assert [
        _carried(m) for m in client.lrange(QUEUES.queue(ORIGINAL_MODEL, "high").name, 0, -1)
    ] == [high]
    assert client.llen(QUEUE.name) == 0


def test_a_death_while_holding_a_group_costs_no_member_an_attempt(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """The process died with four jobs claimed: the sweep puts each back alone, its attempt
    given back; run alone, each start counts, so a poison image dies alone until it fails."""
    ids = _group(store, 4)
    store.claim_group(next_delivery(client), worker_id="host:1")  # no heartbeat: it is gone
    assert sorted(sweep(store, client, QUEUES)) == sorted(ids)
    assert sorted(_carried(m)[0] for m in client.lrange(QUEUE.name, 0, -1)) == sorted(ids)
    for job_id in ids:
        assert client.hget(f"imgclf:job:{job_id}", "attempts") == b"0"
        assert client.hget(f"imgclf:job:{job_id}", "msg") is None  # its own message now
    poison = ids[0]
    for attempt in range(2):  # alone now: each death counts
        assert store.claim(poison, worker_id=f"host:{10 + attempt}") is not None
        client.delete(QUEUE.name)
        sweep(store, client, QUEUES)
    assert store.claim(poison, worker_id="host:20") is None
    assert store.get(poison).status is JobStatus.FAILED
    assert store.claim(ids[1], worker_id="host:21") is not None  # a mate: one attempt, alive


def test_a_redelivered_group_runs_a_dead_holders_jobs_alone(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """The group's message comes back (the node died holding it): its jobs that a dead process
    held are not run in the group again, but alone."""
    ids = _group(store, 3)
    group = next_delivery(client)
    store.claim_group(group, worker_id="host:1")
    workers.beat(client, _info("host:2"), ttl_seconds=60)
    redelivered = store.claim_group(group, worker_id="host:2")
    assert redelivered.jobs == []
    assert redelivered.alone == ids
    (alone,) = store.claim_group(Delivery([ids[0]], group.tag), worker_id="host:2").jobs
    assert alone.job_id == ids[0]
    assert client.hget(f"imgclf:job:{ids[0]}", "attempts") == b"1"  # the group's start given back


def test_a_job_put_back_alone_no_longer_runs_from_its_group_s_message(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """Its group's message, redelivered later, skips it: it runs from its own, as claimed."""
    ids = _group(store, 2)
    group = next_delivery(client)
    store.claim_group(group, worker_id="host:1")
    sweep(store, client, QUEUES)  # host:1 is gone: both put back alone
    assert store.claim_group(group, worker_id="host:2").jobs == []
    alone = next_delivery(client)
    assert len(alone.job_ids) == 1
    assert alone.tag in ids
    assert [c.job_id for c in store.claim_group(alone, worker_id="w").jobs] == [alone.tag]


def test_a_lost_group_message_is_found_and_each_job_published_again(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    ids = _group(store, 3)
    message = client.rpop(QUEUE.name)  # popped, never recorded as unacked
    assert sorted(sweep(store, client, QUEUES, lost_grace_seconds=0)) == sorted(ids)
    assert sorted(_carried(m)[0] for m in client.lrange(QUEUE.name, 0, -1)) == sorted(ids)
    client.delete(QUEUE.name)
    client.hset("unacked", json.loads(message)["headers"]["id"], message)  # held by a consumer
    for job_id in ids:
        client.hset(f"imgclf:job:{job_id}", "msg", json.loads(message)["headers"]["id"])
    assert sweep(store, client, QUEUES, lost_grace_seconds=0) == []


def test_a_group_held_by_a_live_process_is_overdue_only_after_all_its_jobs_limits(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    ids = _group(store, 4)
    workers.beat(client, _info("host:1"), ttl_seconds=60)
    store.claim_group(next_delivery(client), worker_id="host:1")
    for job_id in ids:  # claimed 300 s ago
        claimed = int(client.hget(f"imgclf:job:{job_id}", "claimed_ms")) - 300_000
        client.hset(f"imgclf:job:{job_id}", "claimed_ms", claimed)
    assert sweep(store, client, QUEUES, max_running_seconds=100) == []  # 4 x 100 s not yet
    assert sorted(sweep(store, client, QUEUES, max_running_seconds=60)) == sorted(ids)

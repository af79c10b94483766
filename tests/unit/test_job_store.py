from __future__ import annotations

import base64
import json

import fakeredis
import pytest
from redis.client import PubSub

from shared import workers
from shared.errors import ImgclfError, JobNotCancelableError, JobNotFoundError, QueueFullError
from shared.jobs import (
    EVENTS_CHANNEL,
    JobStore,
    NewJob,
    QueueLimits,
    announced_job,
    image_key,
    job_key,
)
from shared.queue import CLASSIFY_TASK
from shared.schemas import JobResult, JobStatus, ModelRef, Prediction, Timings
from tests.jobs import QUEUE, QUEUES, queue_job

pytestmark = pytest.mark.unit

NEW = NewJob(
    filename="cat.jpg", content_type="image/jpeg", size_bytes=3, width=4, height=5, top_k=3
)
RESULT = JobResult(
    predictions=[Prediction(class_id=208, label="Labrador retriever", probability=0.7)],
    model=ModelRef(name="SqueezeNet 1.1", sha256="x"),
    timings=Timings(queue_wait_ms=1, decode_ms=1, preprocess_ms=1, inference_ms=1),
)


def test_each_queued_job_gets_one_celery_message_naming_it(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    jobs = store.enqueue([(NEW, b"a"), (NEW, b"b")], queues=QUEUES, limits=QueueLimits(10))
    messages = [json.loads(m) for m in reversed(client.lrange(QUEUE.name, 0, -1))]
    assert [m["headers"]["id"] for m in messages] == [job.job_id for job in jobs]
    assert {m["headers"]["task"] for m in messages} == {CLASSIFY_TASK}
    args, kwargs, _ = json.loads(base64.b64decode(messages[0]["body"]))
    assert (args, kwargs) == ([jobs[0].job_id], {"model": "squeezenet"})
    assert client.get(image_key(jobs[1].job_id)) == b"b"


def test_a_batch_over_the_queue_limit_is_refused_whole(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    store.enqueue([(NEW, b"a")], queues=QUEUES, limits=QueueLimits(3))
    with pytest.raises(QueueFullError, match=r"1 jobs waiting, limit 3"):
        store.enqueue([(NEW, b"b"), (NEW, b"c"), (NEW, b"d")], queues=QUEUES, limits=QueueLimits(3))
    assert client.llen(QUEUE.name) == 1
    assert len(client.keys("imgclf:job:*")) == 1


def test_created_job_is_queued_with_upload_metadata(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    fetched = store.get(job.job_id)
    assert fetched.status is JobStatus.QUEUED
    assert (fetched.filename, fetched.width, fetched.height, fetched.top_k) == ("cat.jpg", 4, 5, 3)
    assert fetched.started_at is None
    assert fetched.result is None


def test_job_and_image_expire_after_ttl(store: JobStore, client: fakeredis.FakeRedis) -> None:
    job = queue_job(store, NEW, b"abc")
    assert 0 < client.ttl(job_key(job.job_id)) <= 60
    assert 0 < client.ttl(image_key(job.job_id)) <= 60


def test_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError):
        store.get("00000000-0000-0000-0000-000000000000")


def test_claim_hands_the_worker_image_and_top_k(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    claim = store.claim(job.job_id)
    assert claim is not None
    assert (claim.image, claim.top_k) == (b"abc", 3)
    assert store.get(job.job_id).status is JobStatus.RUNNING


def test_success_stores_result_and_deletes_image(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    job = queue_job(store, NEW, b"abc")
    store.claim(job.job_id)
    assert store.succeed(job.job_id, RESULT)
    done = store.get(job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == RESULT
    assert done.finished_at is not None
    assert not client.exists(image_key(job.job_id))


def test_terminal_job_is_never_claimed_or_overwritten_again(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    store.claim(job.job_id)
    store.succeed(job.job_id, RESULT)
    assert store.claim(job.job_id) is None
    assert not store.fail(job.job_id, ImgclfError("late duplicate"))
    assert store.get(job.job_id).status is JobStatus.SUCCEEDED


def test_running_job_redelivered_after_a_crash_can_be_claimed_again(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    assert store.claim(job.job_id) is not None
    assert store.claim(job.job_id) is not None


def test_failure_records_code_and_message(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    store.claim(job.job_id)
    store.fail(job.job_id, ImgclfError("boom"))
    failed = store.get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("internal_error", "boom")


def test_cancel_queued_job_and_skip_it_later(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    assert store.cancel(job.job_id).status is JobStatus.CANCELED
    assert store.claim(job.job_id) is None


def test_cancel_twice_conflicts(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    store.cancel(job.job_id)
    with pytest.raises(JobNotCancelableError, match="canceled"):
        store.cancel(job.job_id)


def test_cancel_running_job_conflicts(store: JobStore) -> None:
    job = queue_job(store, NEW, b"abc")
    store.claim(job.job_id)
    with pytest.raises(JobNotCancelableError, match="running"):
        store.cancel(job.job_id)


def test_cancel_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError):
        store.cancel("nope")


def _subscribed(client: fakeredis.FakeRedis) -> PubSub:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(EVENTS_CHANNEL)
    pubsub.get_message(timeout=0.1)
    return pubsub


def _next_event(pubsub: PubSub) -> str:
    message = pubsub.get_message(timeout=1)
    assert message is not None
    return str(message["data"].decode())


def test_finish_and_cancel_announce_the_final_job(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    events = _subscribed(client)
    done, canceled = queue_job(store, NEW, b"abc"), queue_job(store, NEW, b"def")
    store.claim(done.job_id)
    store.succeed(done.job_id, RESULT)
    store.cancel(canceled.job_id)
    announced = [announced_job(_next_event(events)) for _ in range(2)]
    assert announced == [
        (done.job_id, store.get(done.job_id)),
        (canceled.job_id, store.get(canceled.job_id)),
    ]
    assert announced[0][1] is not None
    assert announced[0][1].result == RESULT


def test_a_large_job_is_announced_by_its_id_alone(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """Every API process receives every event: ~75 KB of a top_k=1000 result each is not sent."""
    predictions = [
        Prediction(class_id=i, label=f"class number {i}", probability=1 / 1000) for i in range(1000)
    ]
    large = RESULT.model_copy(update={"predictions": predictions})
    events = _subscribed(client)
    job = queue_job(store, NEW, b"abc")
    store.claim(job.job_id)
    store.succeed(job.job_id, large)
    assert _next_event(events) == job.job_id
    assert store.get(job.job_id).result == large


@pytest.mark.parametrize("message", ["abc", "abc {not json", 'abc {"status": "succeeded"}'])
def test_an_event_without_a_readable_job_still_names_it(message: str) -> None:
    assert announced_job(message) == ("abc", None)


def test_running_count_follows_claims_and_finishes(store: JobStore) -> None:
    first, second = queue_job(store, NEW, b"a"), queue_job(store, NEW, b"b")
    store.claim(first.job_id)
    store.claim(second.job_id)
    store.claim(second.job_id)  # a redelivery is still one running job
    assert store.running_count() == 2
    store.succeed(first.job_id, RESULT)
    assert store.running_count() == 1


def test_finished_counts_by_terminal_status(store: JobStore) -> None:
    done, failed, canceled = (queue_job(store, NEW, b"x") for _ in range(3))
    store.claim(done.job_id)
    store.succeed(done.job_id, RESULT)
    store.claim(failed.job_id)
    store.fail(failed.job_id, ImgclfError("x"))
    store.cancel(canceled.job_id)
    store.fail(done.job_id, ImgclfError("duplicate, ignored"))
    assert store.finished_counts() == {"succeeded": 1, "failed": 1, "canceled": 1}


def test_jobs_queue_and_claim_after_redis_lost_its_scripts(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    first = queue_job(store, NEW, b"a")
    client.script_flush()  # what a Redis restart does
    second = queue_job(store, NEW, b"b")
    client.script_flush()
    claim = store.claim(second.job_id, worker_id="w")
    assert claim is not None
    assert claim.image == b"b"
    assert store.get(first.job_id).status is JobStatus.QUEUED


def _beat(client: fakeredis.FakeRedis, worker_id: str) -> None:
    info = workers.WorkerInfo(
        worker_id=worker_id, hostname="h", pid=1, model_name="m", model_sha256="s",
        runtime="r", execution_provider="CPU", threads=1, model_load_seconds=0.1,
    )  # fmt: skip
    workers.beat(client, info, ttl_seconds=10)


def test_a_second_delivery_never_takes_a_job_from_a_live_process(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """Clock skew, a sweep after an outage or a retried enqueue can deliver a running job again:
    it must not run twice at once, nor count as a death."""
    job = queue_job(store, NEW, b"abc")
    _beat(client, "node-a:1")
    assert store.claim(job.job_id, worker_id="node-a:1") is not None
    assert store.claim(job.job_id, worker_id="node-b:2") is None
    assert client.hget(job_key(job.job_id), "worker") == b"node-a:1"
    assert client.hget(job_key(job.job_id), "attempts") == b"1"
    workers.leave(client, "node-a:1")  # its process died
    assert store.claim(job.job_id, worker_id="node-b:2") is not None
    assert client.hget(job_key(job.job_id), "attempts") == b"2"


def test_a_process_restarted_with_a_dead_ones_host_and_pid_does_not_keep_its_jobs(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    """A container restarted in place: same hostname and, in a new PID namespace, the same pid.
    The dead process's jobs are recovered, not kept running by its successor's heartbeat."""
    job = queue_job(store, NEW, b"abc")
    dead = workers.new_worker_id()
    _beat(client, dead)
    assert store.claim(job.job_id, worker_id=dead) is not None
    workers.leave(client, dead)  # its entry expired
    successor = workers.new_worker_id()  # this very host and pid, started again
    assert successor != dead
    _beat(client, successor)
    assert store.requeue_orphan(job.job_id, worker_id=dead, queues=QUEUES) == 1
    assert store.get(job.job_id).status is JobStatus.QUEUED


def test_a_garbage_heartbeat_is_skipped_not_fatal(client: fakeredis.FakeRedis) -> None:
    _beat(client, "good:1")
    client.zadd("imgclf:workers", {"junk:2": 10**15})
    client.hset("imgclf:workers:info", "junk:2", b"{not json")
    assert [info.worker_id for info in workers.alive(client)] == ["good:1"]


def test_queued_image_bytes_are_capped_and_given_back_when_jobs_leave_the_queue(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    limits = QueueLimits(jobs=100, image_bytes=7)  # NEW describes a 3-byte upload
    first, second = store.enqueue([(NEW, b"aaa"), (NEW, b"bbb")], queues=QUEUES, limits=limits)
    assert store.queued_bytes() == 6
    with pytest.raises(
        QueueFullError, match="6 bytes of images waiting, limit 7, MAX_QUEUED_BYTES"
    ):
        store.enqueue([(NEW, b"ccc")], queues=QUEUES, limits=limits)
    assert client.llen(QUEUE.name) == 2  # refused whole, nothing stored
    store.claim(first.job_id, worker_id="w")
    store.cancel(second.job_id)
    assert store.queued_bytes() == 0
    (third,) = store.enqueue([(NEW, b"ccc")], queues=QUEUES, limits=limits)
    assert store.queued_bytes() == 3
    store.claim(third.job_id, worker_id="w")  # no heartbeat: its process counts as gone
    assert store.queued_bytes() == 0
    assert store.requeue_orphan(third.job_id, worker_id="w", queues=QUEUES) == 1
    assert store.queued_bytes() == 3

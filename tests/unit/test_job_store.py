from __future__ import annotations

import fakeredis
import pytest

from shared.errors import ImgclfError, JobNotCancelableError, JobNotFoundError
from shared.jobs import JobStore, NewJob, image_key, job_key
from shared.schemas import JobResult, JobStatus, ModelRef, Prediction, Timings

pytestmark = pytest.mark.unit

NEW = NewJob(
    filename="cat.jpg", content_type="image/jpeg", size_bytes=3, width=4, height=5, top_k=3
)
RESULT = JobResult(
    predictions=[Prediction(class_id=208, label="Labrador retriever", probability=0.7)],
    model=ModelRef(name="SqueezeNet 1.1", sha256="x"),
    timings=Timings(queue_wait_ms=1, decode_ms=1, preprocess_ms=1, inference_ms=1),
)


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(client, ttl_seconds=60)


def test_created_job_is_queued_with_upload_metadata(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    fetched = store.get(job.job_id)
    assert fetched.status is JobStatus.QUEUED
    assert (fetched.filename, fetched.width, fetched.height, fetched.top_k) == ("cat.jpg", 4, 5, 3)
    assert fetched.started_at is None
    assert fetched.result is None


def test_job_and_image_expire_after_ttl(store: JobStore, client: fakeredis.FakeRedis) -> None:
    job = store.create(NEW, b"abc")
    assert 0 < client.ttl(job_key(job.job_id)) <= 60
    assert 0 < client.ttl(image_key(job.job_id)) <= 60


def test_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError):
        store.get("00000000-0000-0000-0000-000000000000")


def test_claim_hands_the_worker_image_and_top_k(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    claim = store.claim(job.job_id)
    assert claim is not None
    assert (claim.image, claim.top_k) == (b"abc", 3)
    assert store.get(job.job_id).status is JobStatus.RUNNING


def test_success_stores_result_and_deletes_image(
    store: JobStore, client: fakeredis.FakeRedis
) -> None:
    job = store.create(NEW, b"abc")
    store.claim(job.job_id)
    assert store.succeed(job.job_id, RESULT)
    done = store.get(job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == RESULT
    assert done.finished_at is not None
    assert not client.exists(image_key(job.job_id))


def test_terminal_job_is_never_claimed_or_overwritten_again(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    store.claim(job.job_id)
    store.succeed(job.job_id, RESULT)
    assert store.claim(job.job_id) is None
    assert not store.fail(job.job_id, ImgclfError("late duplicate"))
    assert store.get(job.job_id).status is JobStatus.SUCCEEDED


def test_running_job_redelivered_after_a_crash_can_be_claimed_again(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    assert store.claim(job.job_id) is not None
    assert store.claim(job.job_id) is not None


def test_failure_records_code_and_message(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    store.claim(job.job_id)
    store.fail(job.job_id, ImgclfError("boom"))
    failed = store.get(job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("internal_error", "boom")


def test_cancel_queued_job_and_skip_it_later(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    assert store.cancel(job.job_id).status is JobStatus.CANCELED
    assert store.claim(job.job_id) is None


def test_cancel_twice_conflicts(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    store.cancel(job.job_id)
    with pytest.raises(JobNotCancelableError, match="canceled"):
        store.cancel(job.job_id)


def test_cancel_running_job_conflicts(store: JobStore) -> None:
    job = store.create(NEW, b"abc")
    store.claim(job.job_id)
    with pytest.raises(JobNotCancelableError, match="running"):
        store.cancel(job.job_id)


def test_cancel_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError):
        store.cancel("nope")


def test_finish_publishes_an_event(store: JobStore, client: fakeredis.FakeRedis) -> None:
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("imgclf:events")
    pubsub.get_message(timeout=0.1)
    job = store.create(NEW, b"abc")
    store.claim(job.job_id)
    store.succeed(job.job_id, RESULT)
    message = pubsub.get_message(timeout=1)
    assert message is not None
    assert message["data"] == job.job_id.encode()


def test_running_count_follows_claims_and_finishes(store: JobStore) -> None:
    first, second = store.create(NEW, b"a"), store.create(NEW, b"b")
    store.claim(first.job_id)
    store.claim(second.job_id)
    store.claim(second.job_id)  # a redelivery is still one running job
    assert store.running_count() == 2
    store.succeed(first.job_id, RESULT)
    assert store.running_count() == 1


def test_finished_counts_by_terminal_status(store: JobStore) -> None:
    done, failed, canceled = (store.create(NEW, b"x") for _ in range(3))
    store.claim(done.job_id)
    store.succeed(done.job_id, RESULT)
    store.claim(failed.job_id)
    store.fail(failed.job_id, ImgclfError("x"))
    store.cancel(canceled.job_id)
    store.fail(done.job_id, ImgclfError("duplicate, ignored"))
    assert store.finished_counts() == {"succeeded": 1, "failed": 1, "canceled": 1}

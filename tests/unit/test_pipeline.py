from __future__ import annotations

import time
from collections.abc import Sequence

import fakeredis
import numpy as np
import pytest

from shared.errors import StoreUnavailableError
from shared.jobs import Claimed, Delivery, Grouping, JobStore, NewJob, QueueLimits
from shared.jobs.operations import Outcome
from shared.schemas import JobStatus
from shared.store_health import StoreHealth
from tests.images import encode, gradient
from tests.jobs import QUEUES, next_delivery, queue_job
from tests.processes import ROOT, SHARED_IMAGES
from worker.model import Classifier, load_named
from worker.pipeline import classify, softmax, top_predictions
from worker.processing import LONGEST_STORE_CALL_SECONDS, JobRunner

pytestmark = pytest.mark.unit
LIMIT = 50_000_000


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return load_named(ROOT / "models", "squeezenet", threads=1)


def test_softmax_is_a_stable_probability_distribution() -> None:
    probs = softmax(np.array([1000.0, 1001.0, 999.0], dtype=np.float32))
    assert np.isfinite(probs).all()
    assert probs.sum() == pytest.approx(1.0)
    assert probs.argmax() == 1


def test_top_predictions_are_ordered_and_labelled() -> None:
    labels = ["a", "b", "c", "d"]
    top = top_predictions(np.array([0.1, 0.4, 0.2, 0.3]), labels, k=3)
    assert [p.label for p in top] == ["b", "d", "c"]
    assert [p.class_id for p in top] == [1, 3, 2]


def test_top_k_is_capped_at_the_number_of_classes() -> None:
    assert len(top_predictions(np.array([0.5, 0.5]), ["a", "b"], k=1000)) == 2


def test_labrador_photo_is_a_labrador(classifier: Classifier) -> None:
    data = (SHARED_IMAGES / "labrador.jpg").read_bytes()
    result = classify(data, classifier=classifier, top_k=2, max_pixels=LIMIT)
    assert [(p.class_id, p.label) for p in result.predictions] == [
        (208, "Labrador retriever"),
        (207, "golden retriever"),
    ]
    assert result.predictions[0].probability == pytest.approx(0.68, abs=0.03)


def _store_with_job(data: bytes) -> tuple[JobStore, str]:
    store = JobStore(fakeredis.FakeRedis(), ttl_seconds=60)
    job = queue_job(
        store,
        NewJob(
            filename="x",
            content_type="image/jpeg",
            size_bytes=len(data),
            width=1,
            height=1,
            top_k=5,
        ),
        data,
    )
    return store, job.job_id


def test_process_job_records_result_with_model_and_timings(classifier: Classifier) -> None:
    store, job_id = _store_with_job((SHARED_IMAGES / "labrador.jpg").read_bytes())
    assert (
        JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT).process(job_id).status
        is JobStatus.SUCCEEDED
    )
    job = store.get(job_id)
    assert job.result is not None
    assert job.result.predictions[0].class_id == 208
    assert len(job.result.predictions) == 5
    assert job.result.model.sha256 == classifier.sha256
    assert job.result.timings.inference_ms > 0


def test_process_job_twice_keeps_the_first_result(classifier: Classifier) -> None:
    store, job_id = _store_with_job((SHARED_IMAGES / "labrador.jpg").read_bytes())
    JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT).process(job_id)
    first = store.get(job_id)
    assert JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT).process(job_id) is None
    assert store.get(job_id) == first


def test_undecodable_image_fails_the_job_with_invalid_image_code(classifier: Classifier) -> None:
    data = encode(gradient(), "JPEG")
    store, job_id = _store_with_job(data[:300] + b"\x00" * 300 + data[-2:])
    assert (
        JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT).process(job_id).status
        is JobStatus.FAILED
    )
    job = store.get(job_id)
    assert job.error is not None
    assert job.error.code == "invalid_image"


def test_canceled_job_is_skipped(classifier: Classifier) -> None:
    store, job_id = _store_with_job(b"irrelevant")
    store.cancel(job_id)
    assert JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT).process(job_id) is None
    assert store.get(job_id).status is JobStatus.CANCELED


class FlakyStore(JobStore):
    """A store whose claims and results fail `failures` times each, as a struggling Redis does."""

    def __init__(self, store: JobStore, failures: int) -> None:
        self.__dict__.update(store.__dict__)
        self.claims_left = self.finishes_left = failures

    def claim_group(
        self, delivery: Delivery, *, worker_id: str = "", takeover: bool = True
    ) -> Claimed:
        if self.claims_left:
            self.claims_left -= 1
            raise StoreUnavailableError("Redis timed out")
        return super().claim_group(delivery, worker_id=worker_id, takeover=takeover)

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if self.finishes_left:
            self.finishes_left -= 1
            raise StoreUnavailableError("OOM command not allowed")
        return super().finish(outcomes)


def test_store_errors_during_claim_and_result_are_retried(classifier: Classifier) -> None:
    store, job_id = _store_with_job((SHARED_IMAGES / "labrador.jpg").read_bytes())
    flaky = FlakyStore(store, failures=2)
    processed = JobRunner(
        flaky, {classifier.name: classifier}, max_pixels=LIMIT, store_retry_seconds=30
    ).process(job_id)
    assert processed is not None
    assert processed.status is JobStatus.SUCCEEDED
    assert (flaky.claims_left, flaky.finishes_left) == (0, 0)
    assert store.get(job_id).status is JobStatus.SUCCEEDED


def test_a_store_that_stays_down_leaves_the_job_to_the_sweep(classifier: Classifier) -> None:
    store, job_id = _store_with_job((SHARED_IMAGES / "labrador.jpg").read_bytes())
    runner = JobRunner(FlakyStore(store, failures=100), {classifier.name: classifier}, max_pixels=LIMIT,
                       store_retry_seconds=0.5)  # fmt: skip
    with pytest.raises(StoreUnavailableError):
        runner.process(job_id)
    assert store.get(job_id).status is JobStatus.QUEUED


def test_right_after_an_outage_a_job_held_by_another_process_is_not_taken(
    classifier: Classifier,
) -> None:
    """Every heartbeat expired during the outage, so a dead owner and a live one look alike."""
    store, job_id = _store_with_job((SHARED_IMAGES / "labrador.jpg").read_bytes())
    assert store.claim(job_id, worker_id="other:1") is not None  # no heartbeat: looks dead
    health = StoreHealth(settle_seconds=60)
    health.failed()
    runner = JobRunner(
        store, {classifier.name: classifier}, max_pixels=LIMIT, worker_id="me:2", health=health
    )
    assert runner.process(job_id) is None
    assert store.get(job_id).status is JobStatus.RUNNING
    settled = JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT, worker_id="me:2",
                        health=StoreHealth(settle_seconds=60))  # fmt: skip
    processed = settled.process(job_id)
    assert processed is not None
    assert processed.status is JobStatus.SUCCEEDED


def test_store_retries_stop_in_time_for_the_task_to_end_before_its_soft_limit(
    classifier: Classifier,
) -> None:
    """A limit that fires as a task ends can hit its process idle: the retries leave room for
    one more store call (`LONGEST_STORE_CALL_SECONDS`) before it."""
    store, job_id = _store_with_job((SHARED_IMAGES / "labrador.jpg").read_bytes())
    soft_limit = LONGEST_STORE_CALL_SECONDS + 1
    runner = JobRunner(FlakyStore(store, failures=10_000), {classifier.name: classifier}, max_pixels=LIMIT,
                       store_retry_seconds=300, soft_limit_seconds=soft_limit)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        runner.process(job_id)
    assert time.monotonic() - started < soft_limit


def _store_with_group(
    images: list[bytes], client: fakeredis.FakeRedis | None = None
) -> tuple[JobStore, Delivery]:
    client = client or fakeredis.FakeRedis()
    store = JobStore(client, ttl_seconds=60)
    new = NewJob(filename="x", content_type="image/jpeg", size_bytes=1, width=1, height=1, top_k=3)
    store.enqueue([(new, data) for data in images], queues=QUEUES, limits=QueueLimits(100),
                  grouping=Grouping(max_jobs=16))  # fmt: skip
    return store, next_delivery(client)


def test_a_group_runs_each_job_to_its_own_outcome(classifier: Classifier) -> None:
    labrador = (SHARED_IMAGES / "labrador.jpg").read_bytes()
    broken = encode(gradient(), "JPEG")[:300] + b"\0" * 300
    store, group = _store_with_group([labrador, broken, labrador])
    ids = group.job_ids
    processed = JobRunner(store, {classifier.name: classifier}, max_pixels=LIMIT).run(
        ids, group.tag
    )
    assert [p.status for p in processed] == [JobStatus.SUCCEEDED, JobStatus.FAILED,
                                             JobStatus.SUCCEEDED]  # fmt: skip
    jobs = [store.get(job_id) for job_id in ids]
    assert [job.status for job in jobs] == [p.status for p in processed]
    assert jobs[1].error is not None
    assert jobs[1].error.code == "invalid_image"
    assert jobs[0].result is not None
    assert jobs[0].result.predictions[0].class_id == 208


def test_batched_inference_answers_as_one_image_at_a_time(classifier: Classifier) -> None:
    """WORKER_BATCH_INFERENCE=on: a group through the model in one call, the published file's
    batch axis made dynamic; the same classes and probabilities as image by image."""
    batching = load_named(ROOT / "models", "squeezenet", threads=1, batch="on")
    assert batching.batches
    assert not classifier.batches
    images = [(SHARED_IMAGES / "labrador.jpg").read_bytes(), encode(gradient(), "PNG"),
              encode(gradient(), "JPEG")[:300] + b"\0" * 300]  # fmt: skip
    outcomes = []
    for model in (classifier, batching):
        store, group = _store_with_group(images)
        JobRunner(store, {model.name: model}, max_pixels=LIMIT).run(group.job_ids, group.tag)
        outcomes.append([store.get(job_id) for job_id in group.job_ids])
    one_by_one, batched = outcomes
    assert [job.status for job in batched] == [job.status for job in one_by_one]
    for alone, together in zip(one_by_one, batched, strict=True):
        if alone.result is None or together.result is None:
            assert alone.error == together.error
            continue
        assert [p.class_id for p in together.result.predictions] == [
            p.class_id for p in alone.result.predictions
        ]
        for a, b in zip(alone.result.predictions, together.result.predictions, strict=True):
            assert b.probability == pytest.approx(a.probability, abs=1e-5)


def test_jobs_redis_kept_from_finishing_are_given_back_with_their_attempt(
    classifier: Classifier,
) -> None:
    """The first outcome of a group is not taken: it and the jobs after it are given back to
    the queue once Redis answers, alone, none charged an attempt."""
    labrador, client = (SHARED_IMAGES / "labrador.jpg").read_bytes(), fakeredis.FakeRedis()
    store, group = _store_with_group([labrador] * 3, client)
    ids = group.job_ids
    runner = JobRunner(FlakyStore(store, failures=0), {classifier.name: classifier}, max_pixels=LIMIT,
                       worker_id="me:1", store_retry_seconds=0)  # fmt: skip
    runner.store.finishes_left = 1  # type: ignore[attr-defined]
    assert runner.run(ids, group.tag) == []
    assert [store.get(job_id).status for job_id in ids] == [JobStatus.RUNNING] * 3
    assert sorted(runner.hand_back.give_back(store, worker_id="me:1", queues=QUEUES)) == sorted(ids)
    for job_id in ids:
        assert store.get(job_id).status is JobStatus.QUEUED
        assert client.hget(f"imgclf:job:{job_id}", "attempts") == b"0"
    assert runner.hand_back.give_back(store, worker_id="me:1", queues=QUEUES) == []

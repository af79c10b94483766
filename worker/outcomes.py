"""What a job's run comes to: the outcome the store records (its result, with the model and the
timings, or its error), and what the process reports of it (`Processed`, for the metrics)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.errors import ImgclfError, ModelError
from shared.jobs import Claim
from shared.jobs.operations import Outcome
from shared.schemas import JobResult, JobStatus, ModelRef, Timings
from worker.model import Classifier
from worker.pipeline import Classification


@dataclass(frozen=True, slots=True)
class Processed:
    """What became of a job this worker ran."""

    job_id: str
    status: JobStatus
    result: JobResult | None = None
    classification: Classification | None = None
    queue_wait_seconds: float = 0.0
    # From the job's acceptance to its outcome being recorded.
    end_to_end_seconds: float | None = None


def outcome_of(
    claim: Claim,
    classified: Classification | ImgclfError,
    classifier: Classifier | ModelError,
    *,
    trace: str = "",
) -> Outcome:
    """The outcome to record for a claimed job of `classifier`'s model: its error, or its
    result; `trace` the `traceparent` its webhook continues."""
    if isinstance(classified, ImgclfError):
        return Outcome(claim.job_id, error=classified, trace=trace, model=claim.model)
    # A job classified had a model to classify it (`JobRunner` fails the jobs of one it lacks).
    assert isinstance(classifier, Classifier)
    timings = Timings(
        queue_wait_ms=_queue_wait(claim) * 1000,
        decode_ms=classified.decode_seconds * 1000,
        preprocess_ms=classified.preprocess_seconds * 1000,
        inference_ms=classified.inference_seconds * 1000,
    )
    result = JobResult(
        predictions=classified.predictions,
        model=ModelRef(name=classifier.name, version=classifier.version, sha256=classifier.sha256),
        timings=timings,
    )
    return Outcome(claim.job_id, result=result, trace=trace, model=claim.model)


def processed(
    claim: Claim, outcome: Outcome, classified: Classification | ImgclfError
) -> Processed:
    """What became of a job whose outcome was just recorded."""
    end_to_end = max(0.0, time.time() - claim.created_at)
    if outcome.result is None or isinstance(classified, ImgclfError):
        return Processed(claim.job_id, JobStatus.FAILED, end_to_end_seconds=end_to_end)
    return Processed(claim.job_id, JobStatus.SUCCEEDED, outcome.result, classified,
                     _queue_wait(claim), end_to_end)  # fmt: skip


def _queue_wait(claim: Claim) -> float:
    return max(0.0, claim.started_at - claim.created_at)

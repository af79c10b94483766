"""One job, start to finish: claim it, classify its image, record the outcome."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.errors import ImgclfError, JobTimeoutError
from shared.jobs import Claim, JobStore
from shared.schemas import JobResult, JobStatus, ModelRef, Timings
from worker.model import Classifier
from worker.pipeline import Classification, classify

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Processed:
    """What became of a job this worker ran."""

    status: JobStatus
    result: JobResult | None = None


def process_job(
    job_id: str,
    *,
    store: JobStore,
    classifier: Classifier,
    max_pixels: int,
    worker_id: str = "",
    soft_limit_errors: tuple[type[BaseException], ...] = (),
) -> Processed | None:
    """Run a job once; None when there was nothing to do (canceled, finished, expired).

    Safe to run twice: the claim refuses terminal jobs and the first recorded outcome wins.
    """
    claim = store.claim(job_id, worker_id=worker_id)
    if claim is None:
        log.info("job %s skipped: canceled, already finished or expired", job_id)
        return None
    try:
        outcome = _classify_claim(claim, classifier=classifier, max_pixels=max_pixels)
    except soft_limit_errors as exc:
        store.fail(job_id, JobTimeoutError("Processing took longer than the task time limit"))
        log.warning("job %s hit the soft time limit: %r", job_id, exc)
        return Processed(JobStatus.FAILED)
    except ImgclfError as exc:
        store.fail(job_id, exc)
        return Processed(JobStatus.FAILED)
    except Exception:
        log.exception("job %s failed unexpectedly", job_id)
        store.fail(job_id, ImgclfError("Internal error while classifying; see the worker log"))
        return Processed(JobStatus.FAILED)
    result = _result(claim, outcome, classifier)
    store.succeed(job_id, result)
    return Processed(JobStatus.SUCCEEDED, result)


def _classify_claim(claim: Claim, *, classifier: Classifier, max_pixels: int) -> Classification:
    if not claim.image:
        raise ImgclfError("The uploaded image expired before a worker reached it")
    return classify(claim.image, classifier=classifier, top_k=claim.top_k, max_pixels=max_pixels)


def _result(claim: Claim, outcome: Classification, classifier: Classifier) -> JobResult:
    return JobResult(
        predictions=outcome.predictions,
        model=ModelRef(name=classifier.name, sha256=classifier.sha256),
        timings=Timings(
            queue_wait_ms=max(0.0, (claim.started_at - claim.created_at) * 1000),
            decode_ms=outcome.decode_ms,
            preprocess_ms=outcome.preprocess_ms,
            inference_ms=outcome.inference_ms,
        ),
    )

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
    classification: Classification | None = None
    queue_wait_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class JobRunner:
    """Runs jobs in one worker process: built once, with the process's store and model."""

    store: JobStore
    classifier: Classifier
    max_pixels: int
    worker_id: str = ""
    fast_progressive_jpeg: bool = True
    # Raised into a task that runs past its soft time limit (Celery's SoftTimeLimitExceeded).
    soft_limit_errors: tuple[type[BaseException], ...] = ()

    def process(self, job_id: str) -> Processed | None:
        """Run a job once; None when there was nothing to do (canceled, finished, expired).

        Safe to run twice: the claim refuses terminal jobs and the first recorded outcome wins.
        """
        claim = self.store.claim(job_id, worker_id=self.worker_id)
        if claim is None:
            log.info("job %s skipped: canceled, already finished or expired", job_id)
            return None
        try:
            outcome = self._classify(claim)
        except self.soft_limit_errors as exc:
            self.store.fail(
                job_id, JobTimeoutError("Processing took longer than the task time limit")
            )
            log.warning("job %s hit the soft time limit: %r", job_id, exc)
            return Processed(JobStatus.FAILED)
        except ImgclfError as exc:
            self.store.fail(job_id, exc)
            return Processed(JobStatus.FAILED)
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            self.store.fail(
                job_id, ImgclfError("Internal error while classifying; see the worker log")
            )
            return Processed(JobStatus.FAILED)
        queue_wait = max(0.0, claim.started_at - claim.created_at)
        result = _result(outcome, queue_wait, self.classifier)
        self.store.succeed(job_id, result)
        return Processed(JobStatus.SUCCEEDED, result, outcome, queue_wait)

    def _classify(self, claim: Claim) -> Classification:
        if not claim.image:
            raise ImgclfError("The uploaded image expired before a worker reached it")
        return classify(
            claim.image,
            classifier=self.classifier,
            top_k=claim.top_k,
            max_pixels=self.max_pixels,
            fast_progressive=self.fast_progressive_jpeg,
        )


def _result(outcome: Classification, queue_wait: float, classifier: Classifier) -> JobResult:
    return JobResult(
        predictions=outcome.predictions,
        model=ModelRef(name=classifier.name, sha256=classifier.sha256),
        timings=Timings(
            queue_wait_ms=queue_wait * 1000,
            decode_ms=outcome.decode_seconds * 1000,
            preprocess_ms=outcome.preprocess_seconds * 1000,
            inference_ms=outcome.inference_seconds * 1000,
        ),
    )

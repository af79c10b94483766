"""One job, start to finish: claim it, classify its image, record the outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from shared import tracing
from shared.backoff import Backoff
from shared.errors import ImgclfError, JobTimeoutError, StoreUnavailableError
from shared.jobs import Claim, JobStore
from shared.schemas import JobResult, JobStatus, ModelRef, Timings
from shared.store_health import StoreHealth
from worker.model import Classifier
from worker.pipeline import DEFAULT_DECODING, Classification, Decoding, classify

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Processed:
    """What became of a job this worker ran."""

    status: JobStatus
    result: JobResult | None = None
    classification: Classification | None = None
    queue_wait_seconds: float = 0.0
    # From the job's acceptance to its outcome being recorded.
    end_to_end_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class JobRunner:
    """Runs jobs in one worker process: built once, with the process's store and model."""

    store: JobStore
    classifier: Classifier
    max_pixels: int
    worker_id: str = ""
    decoding: Decoding = DEFAULT_DECODING
    # Raised into a task that runs past its soft time limit (Celery's SoftTimeLimitExceeded).
    soft_limit_errors: tuple[type[BaseException], ...] = ()
    # How long a claim or an outcome is retried while Redis does not take it (STORE_RETRY_SECONDS).
    store_retry_seconds: float = 20.0
    # This process's view of Redis lately: no takeovers right after it failed.
    health: StoreHealth | None = None

    def process(self, job_id: str) -> Processed | None:
        """Run a job once; None when there was nothing to do (canceled, finished, expired).

        Safe to run twice: the claim refuses terminal jobs and the first recorded outcome wins.
        """
        with tracing.span("claim", job_id):
            claim = self._retrying("claim", lambda: self._claim(job_id))
        if claim is None:
            log.info("job %s skipped: canceled, finished, expired or running elsewhere", job_id)
            return None
        try:
            outcome = self._classify(claim)
        except self.soft_limit_errors as exc:
            log.warning("job %s hit the soft time limit: %r", job_id, exc)
            timeout = JobTimeoutError("Processing took longer than the task time limit")
            return self._failed(claim, timeout)
        except ImgclfError as exc:
            return self._failed(claim, exc)
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            internal = ImgclfError("Internal error while classifying; see the worker log")
            return self._failed(claim, internal)
        queue_wait = max(0.0, claim.started_at - claim.created_at)
        result = _result(outcome, queue_wait, self.classifier)
        with tracing.span("finish", job_id):
            self._retrying("result", lambda: self.store.succeed(job_id, result))
        return Processed(JobStatus.SUCCEEDED, result, outcome, queue_wait, _since(claim.created_at))

    def _claim(self, job_id: str) -> Claim | None:
        takeover = self.health is None or self.health.settled()
        return self.store.claim(job_id, worker_id=self.worker_id, takeover=takeover)

    def _failed(self, claim: Claim, error: ImgclfError) -> Processed:
        with tracing.span("finish", claim.job_id) as span:
            span.set_attribute("imgclf.error_code", error.code)
            self._retrying("failure", lambda: self.store.fail(claim.job_id, error))
        return Processed(JobStatus.FAILED, end_to_end_seconds=_since(claim.created_at))

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """`call`, retried with backoff while the store is unavailable, for at most
        `store_retry_seconds`; then `StoreUnavailableError` (the job is left to the sweep)."""
        backoff = Backoff()
        deadline = time.monotonic() + self.store_retry_seconds
        while True:
            try:
                return call()
            except StoreUnavailableError as exc:
                if self.health is not None:
                    self.health.failed()
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("job store unavailable for a %s (%s); retrying", what, exc.message)
                time.sleep(delay)

    def _classify(self, claim: Claim) -> Classification:
        if not claim.image:
            raise ImgclfError("The uploaded image expired before a worker reached it")
        return classify(
            claim.image,
            classifier=self.classifier,
            top_k=claim.top_k,
            max_pixels=self.max_pixels,
            decoding=self.decoding,
        )


def _since(created_at: float) -> float:
    return max(0.0, time.time() - created_at)


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

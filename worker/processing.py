"""The jobs of one delivery, start to finish: claim them together, classify each image, record
each outcome.

A delivery is one job or a group (`shared.jobs.groups`): one claim takes them all, then each job
runs on its own (its own time limit, trace span, error and outcome, recorded as soon as it is
known), or, where the model batches (`Classifier.batches`), all go through the model in one
call. A job whose process died while it held several comes back to run alone (`Claimed.alone`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from shared import tracing
from shared.errors import ImgclfError, JobTimeoutError, ModelError, StoreUnavailableError
from shared.jobs import Claim, Claimed, Delivery, JobStore
from shared.model_cards import ORIGINAL_MODEL
from shared.redis_client import CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS
from shared.store_health import StoreHealth
from worker import soft_limit
from worker.hand_back import HandBack
from worker.job_spans import JobSpans
from worker.model import Classifier
from worker.outcomes import Processed, outcome_of, processed
from worker.pipeline import (
    DEFAULT_DECODING,
    Classification,
    Decoding,
    Prepared,
    classify_prepared,
    prepare,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# The longest one store call can take before it fails (a connection, then a reply, timing out).
LONGEST_STORE_CALL_SECONDS = CONNECT_TIMEOUT_SECONDS + SOCKET_TIMEOUT_SECONDS
# Outcomes of a group's jobs go to Redis together, but none waits longer than this for the
# others: a round trip per few small images, not per image, and a large one's at once.
RECORD_WITHIN_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class JobRunner:
    """Runs jobs in one worker process: built once, with the process's store and models."""

    store: JobStore
    # The models this process serves, by name.
    classifiers: Mapping[str, Classifier]
    max_pixels: int
    worker_id: str = ""
    decoding: Decoding = DEFAULT_DECODING
    # Raised into a task that runs past its soft time limit (Celery's SoftTimeLimitExceeded).
    soft_limit_errors: tuple[type[BaseException], ...] = ()
    # How long a claim or an outcome is retried while Redis does not take it (STORE_RETRY_SECONDS).
    store_retry_seconds: float = 20.0
    # This process's view of Redis lately: no takeovers right after it failed.
    health: StoreHealth = field(default_factory=lambda: StoreHealth(settle_seconds=0))
    # Each job's soft time limit (None: none); a delivery's task has one of these per job. The
    # store's retries stop in time for the task to end before its own, since a limit that fires
    # as a task ends can hit its process idle.
    soft_limit_seconds: float | None = None
    # Jobs claimed here that Redis kept from finishing, to give back once it answers.
    hand_back: HandBack = field(default_factory=HandBack)

    def run(
        self, job_ids: Sequence[str], tag: str = "", model: str = ORIGINAL_MODEL
    ) -> list[Processed]:
        """Run a delivery's jobs once each; a job with nothing to do (canceled, finished,
        expired, running elsewhere) is left out. Where Redis keeps the claim or an outcome from
        being recorded, the jobs not finished go to `hand_back`; a claim that failed raises
        `StoreUnavailableError`.

        Safe to run twice: the claim refuses terminal jobs and the first recorded outcome wins.
        `tag` is the delivery's (its message's task id; a lone job's: its id), `model` the
        model its jobs run on (their queue's).
        """
        tag = tag or job_ids[0]
        limit = self.soft_limit_seconds
        ends = None
        if limit is not None:
            ends = time.monotonic() + limit * len(job_ids) - LONGEST_STORE_CALL_SECONDS
        with tracing.span("claim", job_ids[0] if len(job_ids) == 1 else None) as span:
            span.set_attribute("imgclf.job_ids", list(job_ids))
            claimed = self._claim(Delivery(job_ids, tag, model), ends)
        # A group's task is a trace of its own; each of its jobs continues its submit's.
        traced = len(job_ids) > 1
        processed = self._run_claimed(claimed.jobs, ends, traced=traced, model=model)
        for job_id in claimed.alone:
            alone = self._claim(Delivery([job_id], tag, model), ends)
            processed += self._run_claimed(alone.jobs, ends, traced=True, model=model)
        ran = {claim.job_id for claim in claimed.jobs} | set(claimed.alone)
        for job_id in job_ids:
            if job_id not in ran:
                log.info("job %s skipped: canceled, finished, expired or running elsewhere", job_id)
        return processed

    def process(self, job_id: str) -> Processed | None:
        """Run one of SqueezeNet's jobs alone; None when there was nothing to do."""
        processed = self.run([job_id])
        return processed[0] if processed else None

    def _claim(self, delivery: Delivery, ends: float | None) -> Claimed:
        takeover = self.health.settled()
        claim = functools.partial(
            self.store.claim_group, delivery, worker_id=self.worker_id, takeover=takeover
        )
        try:
            return self._retrying("claim", claim, ends)
        except StoreUnavailableError:
            # The claim may have gone through unanswered: those jobs would be held here.
            self.hand_back.add(delivery.job_ids)
            raise

    def _run_claimed(
        self, claims: list[Claim], ends: float | None, *, traced: bool, model: str
    ) -> list[Processed]:
        """Each job classified (where the model batches, all first), its outcome recorded with
        those of the jobs done before it within RECORD_WITHIN_SECONDS: one round trip for
        several small images, at once for a large one. `traced`: each job's spans in its
        submit's trace, under a span of its own, rather than in the task's."""
        spans = JobSpans(claims, traced=traced)
        try:
            return self._classify_and_record(claims, ends, spans, self._model(model))
        finally:
            spans.end()

    def _model(self, model: str) -> Classifier | ModelError:
        """The model a delivery names, or why its jobs fail: a node is sent only its own
        models' jobs, so this is a queue written by hand or a mix-up of WORKER_MODELS."""
        classifier = self.classifiers.get(model)
        if classifier is None:
            served = ", ".join(self.classifiers)
            return ModelError(f"This worker does not serve model {model!r} (it serves {served})")
        return classifier

    def _classify_and_record(
        self,
        claims: list[Claim],
        ends: float | None,
        spans: JobSpans,
        classifier: Classifier | ModelError,
    ) -> list[Processed]:
        batched: Iterator[Classification | ImgclfError] | None = None
        if isinstance(classifier, ModelError):
            batched = iter([classifier] * len(claims))
        elif classifier.batches and len(claims) > 1:
            batched = iter(self._batched(claims, spans, classifier))
        processed: list[Processed] = []
        done: list[tuple[Claim, Classification | ImgclfError]] = []
        first_done = 0.0
        for at, claim in enumerate(claims):
            with spans.about(claim):
                if batched is None:
                    assert isinstance(classifier, Classifier)
                    done.append((claim, self._classified(claim, classifier)))
                else:
                    done.append((claim, next(batched)))
            first_done = first_done or time.monotonic()
            last = at == len(claims) - 1
            if last or time.monotonic() - first_done >= RECORD_WITHIN_SECONDS:
                try:
                    processed += self._record(done, ends, spans, classifier)
                except StoreUnavailableError as exc:
                    left = [c.job_id for c, _ in done] + [c.job_id for c in claims[at + 1 :]]
                    log.warning("jobs %s given back once Redis answers: %s", left, exc.message)
                    self.hand_back.add(left)
                    break
                done, first_done = [], 0.0
        return processed

    def _classified(self, claim: Claim, classifier: Classifier) -> Classification | ImgclfError:
        """The job's classification, or the error it ends with."""
        outcome = self._guarded(
            claim,
            lambda: classify_prepared(
                [self._prepare(claim, classifier)], classifier=classifier, top_ks=[claim.top_k]
            ),
        )
        return outcome if isinstance(outcome, ImgclfError) else outcome[0]

    def _batched(
        self, claims: list[Claim], spans: JobSpans, classifier: Classifier
    ) -> list[Classification | ImgclfError]:
        """Every image prepared on its own, then one inference call for those that made it."""
        prepared: list[Prepared | ImgclfError] = []
        for claim in claims:
            with spans.about(claim):
                prepared.append(
                    self._guarded(claim, lambda: self._prepare(claim, classifier))  # noqa: B023
                )
        ready = [(c, p) for c, p in zip(claims, prepared, strict=True) if isinstance(p, Prepared)]
        if not ready:
            return [p for p in prepared if isinstance(p, ImgclfError)]
        images, top_ks = [p for _, p in ready], [c.top_k for c, _ in ready]
        ids = [c.job_id for c, _ in ready]
        # The model's one call, seen in each job's trace as well as in the task's.
        with tracing.spans("inference", ids, [spans.parent(job_id) for job_id in ids]):
            batch = self._guarded(
                ready[0][0],
                lambda: classify_prepared(images, classifier=classifier, top_ks=top_ks),
                jobs=len(ready),
            )
        classified: list[Classification | ImgclfError] = []
        classified += batch if isinstance(batch, list) else [batch] * len(ready)
        done = iter(classified)
        return [p if isinstance(p, ImgclfError) else next(done) for p in prepared]

    def _prepare(self, claim: Claim, classifier: Classifier) -> Prepared:
        if not claim.image:
            raise ImgclfError("The uploaded image expired before a worker reached it")
        spec = classifier.card.input
        return prepare(claim.image, spec=spec, max_pixels=self.max_pixels, decoding=self.decoding)

    def _guarded(self, claim: Claim, work: Callable[[], T], jobs: int = 1) -> T | ImgclfError:
        """`work` within the time limit of `jobs` jobs; or the error it ends `claim` with."""
        limit = self.soft_limit_seconds and self.soft_limit_seconds * jobs
        try:
            with soft_limit.per_job(limit):
                return work()
        except self.soft_limit_errors as exc:
            log.warning("job %s hit the soft time limit: %r", claim.job_id, exc)
            return JobTimeoutError("Processing took longer than the task time limit")
        except ImgclfError as exc:
            return exc
        except Exception:
            log.exception("job %s failed unexpectedly", claim.job_id)
            return ImgclfError("Internal error while classifying; see the worker log")

    def _record(
        self,
        done: list[tuple[Claim, Classification | ImgclfError]],
        ends: float | None,
        spans: JobSpans,
        classifier: Classifier | ModelError,
    ) -> list[Processed]:
        """The outcomes of `done`, recorded in one round trip; each job's webhook continues
        its `finish` span."""
        ids = [claim.job_id for claim, _ in done]
        with tracing.spans("finish", ids, [spans.parent(job_id) for job_id in ids]) as finish:
            outcomes = [
                outcome_of(claim, outcome, classifier, trace=tracing.traceparent(span))
                for (claim, outcome), span in zip(done, finish, strict=True)
            ]
            for span, recorded in zip(finish, outcomes, strict=True):
                if recorded.error is not None:
                    span.set_attribute("imgclf.error_code", recorded.error.code)
            self._retrying("outcomes", lambda: self.store.finish(outcomes), ends)
        spans.end(ids)
        return [processed(claim, result, outcome) for (claim, outcome), result
                in zip(done, outcomes, strict=True)]  # fmt: skip

    def _retrying(self, what: str, call: Callable[[], T], ends: float | None) -> T:
        """`call`, retried while the store is unavailable, for at most `store_retry_seconds`
        and no later than `ends` (monotonic: the last moment a call still ends before the
        task's soft time limit)."""
        deadline = time.monotonic() + self.store_retry_seconds
        return self.health.retrying(
            what, call, deadline=deadline if ends is None else min(deadline, ends)
        )

"""Where a job's spans go: in its submit's trace, under a `job` span of its own, for the jobs of
a group (whose task is a trace of its own); in the task's trace for a job delivered alone.

A `job` span stays open from the job's first work to its outcome's recording, so its decode,
preprocess, inference and finish spans are its children even where the model runs the group's
images together and their outcomes are recorded a few at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from opentelemetry import trace

from shared import tracing
from shared.jobs import Claim
from shared.log_format import job_context


class JobSpans:
    """The `job` spans of one delivery's claimed jobs (none where `traced` is False)."""

    def __init__(self, claims: Iterable[Claim], *, traced: bool) -> None:
        self._open: dict[str, trace.Span] = {}
        if traced:
            self._open = {c.job_id: tracing.start("job", c.job_id, parent=c.trace) for c in claims}

    @contextlib.contextmanager
    def about(self, claim: Claim) -> Iterator[None]:
        """Log lines inside name the job; spans begun inside are its own."""
        with job_context(claim.job_id):
            span = self._open.get(claim.job_id)
            if span is None:
                yield
                return
            with tracing.inside(span):
                yield

    def parent(self, job_id: str) -> str:
        """The `traceparent` a span of the job's, begun outside `about`, continues ('': the
        current span's)."""
        span = self._open.get(job_id)
        return tracing.traceparent(span) if span is not None else ""

    def end(self, job_ids: Iterable[str] | None = None) -> None:
        """End the spans of `job_ids` (of all jobs left open, by default)."""
        for job_id in list(self._open) if job_ids is None else job_ids:
            span = self._open.pop(job_id, None)
            if span is not None:
                span.end()

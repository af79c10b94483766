"""The enqueue script's call for the requests of one model (`shared.jobs.intake.enqueue` sends
one per model in its transaction): the groups its jobs travel in, their hash fields and
messages, and what the script's replies say of each request."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shared.jobs import keys, record, scripts
from shared.jobs.groups import Group, Grouping, plan
from shared.kombu_messages import ClassifyQueue
from shared.schemas import NewJob

if TYPE_CHECKING:
    from shared.jobs.intake import Request


class ModelCall:
    """The enqueue script's call for the requests of one model: their groups and fields."""

    def __init__(
        self,
        requests: Sequence[Request],
        model: str,
        queues: Mapping[str, ClassifyQueue],
        grouping: Grouping,
        now: float,
    ) -> None:
        self.requests, self.model, self.queues = requests, model, queues
        self.jobs = [
            (job_id, job, len(image), request)
            for request in requests
            for job_id, (job, image) in zip(request.job_ids, request.uploads, strict=True)
        ]
        self.groups, self.member_of = plan(
            [(i, j.priority, n) for i, j, n, _ in self.jobs], grouping
        )
        self.fields = [_fields(job, request, now) for _, job, _, request in self.jobs]
        traces = {job_id: request.trace for job_id, _, _, request in self.jobs}
        self.messages = [(g.priority, _message(queues[g.priority], g, traces)) for g in self.groups]

    def step(self, *, max_jobs: int, max_bytes: int, ttl: int) -> tuple[object, ...]:
        """The script's call: its keys (the model's bookkeeping and queues, each request's
        Idempotency-Key record, each job's hash and image) and arguments (enqueue.lua)."""
        # Every job has the same fields, so the script reads them in strides of one width.
        width = 2 * len(self.fields[0]) if self.fields else 0
        script_keys = [
            *keys.queued_bookkeeping(self.model),
            *(q.name for q in self.queues.values()),
        ]
        script_keys += [r.idempotency.record if r.idempotency else keys.NO_IDEMPOTENCY_KEY
                        for r in self.requests]  # fmt: skip
        args: list[object] = [max_jobs, max_bytes, ttl, width]
        args += [len(self.requests), len(self.groups)]
        for (priority, body), group in zip(self.messages, self.groups, strict=True):
            args += [priority, body, group.tag]
        args += itertools.chain(*(_request_args(request) for request in self.requests))
        for (job_id, _, size, _), job_fields, number in zip(
            self.jobs, self.fields, self.member_of, strict=True
        ):
            script_keys += [keys.job_key(job_id), keys.image_key(job_id)]
            args += [job_id, size, number + 1, *itertools.chain(*job_fields.items())]
        return scripts.ENQUEUE.call(script_keys, args)

    def sent(self, replies: list[list[object]]) -> list[tuple[str, str, str]]:
        """The messages that went out: those of the groups with a job the script wrote."""
        written: set[int] = set()
        at = 0
        for request, reply in zip(self.requests, replies, strict=True):
            count = len(request.uploads)
            if reply[0] == 1:
                written.update(self.member_of[at : at + count])
            at += count
        return [(self.model, *self.messages[g]) for g in sorted(written)]


def _message(queue: ClassifyQueue, group: Group, traces: Mapping[str, str]) -> str:
    # A lone job's task continues its submit's trace; a group's starts one of its own.
    trace = traces[group.job_ids[0]] if len(group.job_ids) == 1 else ""
    return queue.message(*group.job_ids, tag=group.tag, trace=trace)


def _fields(job: NewJob, request: Request, now: float) -> dict[str, str]:
    return record.queued_fields(job, created_at=now, owner=request.owner, trace=request.trace)


def _request_args(request: Request) -> list[object]:
    idem = request.idempotency
    fingerprint = idem.fingerprint if idem else ""
    state = ("pending" if idem.pending else "done") if idem else ""
    return [fingerprint, state, request.uploads[0][0].priority, len(request.uploads)]

"""Group commit: the API's submits reach Redis together, without waiting for one another.

A submit hands its request to the process's `Committer` and waits. While no transaction is in
flight, a request goes at once, alone (an idle system adds no delay); requests that arrive while
one is in flight go together in the next, as PostgreSQL's WAL and Kafka's producer with
`linger.ms=0` do. Their jobs then share queue messages (`shared.jobs.groups`), and each request
still gets its own outcome: its jobs, or its own refusal (a full queue, a reused
Idempotency-Key), never another's.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass

from api import metrics
from shared.errors import ImgclfError
from shared.jobs import AsyncJobStore, Grouping, QueueLimits, Request
from shared.jobs.intake import Outcome
from shared.kombu_messages import Lanes
from shared.schemas import Job

# One transaction takes requests up to these (always at least one): Redis runs a transaction
# whole, and a smaller one keeps other clients' commands from waiting behind it.
TRANSACTION_MAX_JOBS = 256
TRANSACTION_MAX_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class _Waiting:
    request: Request
    outcome: asyncio.Future[Outcome]


class Committer:
    """Queues requests' jobs in as few transactions as the arrival of requests allows."""

    def __init__(
        self,
        store: AsyncJobStore,
        *,
        queues: Lanes,
        limits: QueueLimits,
        grouping: Grouping,
    ) -> None:
        self._store, self._queues, self._limits, self._grouping = store, queues, limits, grouping
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> list[Job]:
        """`request`'s jobs once they are queued; or its refusal, raised."""
        waiting = _Waiting(request, asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._start()
        outcome = await waiting.outcome
        if isinstance(outcome, ImgclfError):
            raise outcome
        return outcome

    async def submit_each(self, requests: Sequence[Request]) -> list[Outcome]:
        """Each request's jobs, or its own refusal (not raised): one outcome per request."""
        loop = asyncio.get_running_loop()
        waiting = [_Waiting(request, loop.create_future()) for request in requests]
        self._waiting += waiting
        self._start()
        return [await one.outcome for one in waiting]

    def _start(self) -> None:
        if self._writer is None:
            # Outside any request's context: the transaction serves many (each job keeps its
            # own submit's trace context).
            self._writer = asyncio.create_task(self._write(), context=contextvars.Context())

    async def _write(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                metrics.TRANSACTION_REQUESTS.observe(len(batch))
                try:
                    outcomes = await self._store.enqueue(
                        [waiting.request for waiting in batch],
                        queues=self._queues,
                        limits=self._limits,
                        grouping=self._grouping,
                    )
                except BaseException as exc:
                    for waiting in batch:
                        _settle(waiting, exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for waiting, outcome in zip(batch, outcomes, strict=True):
                    _settle(waiting, outcome)
        finally:
            self._writer = None

    def _take(self) -> list[_Waiting]:
        jobs = size = 0
        taken = 0
        for waiting in self._waiting:
            uploads = waiting.request.uploads
            jobs += len(uploads)
            size += sum(len(image) for _, image in uploads)
            if taken and (jobs > TRANSACTION_MAX_JOBS or size > TRANSACTION_MAX_BYTES):
                break
            taken += 1
        batch, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return batch


def _settle(waiting: _Waiting, outcome: Outcome | BaseException) -> None:
    if waiting.outcome.done():  # its request gave up waiting (the client went away)
        return
    if isinstance(outcome, asyncio.CancelledError):
        waiting.outcome.cancel()
    elif isinstance(outcome, BaseException) and not isinstance(outcome, ImgclfError):
        waiting.outcome.set_exception(outcome)
    else:
        waiting.outcome.set_result(outcome)

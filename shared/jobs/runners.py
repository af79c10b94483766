"""The job store for blocking code (workers, the sweeper, scrapes) and for asyncio (the API's
requests): thin twins that send the steps of `shared.jobs.operations` to Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

import redis
import redis.asyncio

from shared.errors import ImgclfError, StoreUnavailableError
from shared.jobs import intake, recovery
from shared.jobs import operations as ops
from shared.jobs.groups import ONE_EACH, Grouping
from shared.jobs.intake import Outcome, QueueLimits, Request
from shared.jobs.operations import Claim, Claimed, Delivery, Replication
from shared.jobs.steps import Exchange, LoadedScripts, Operation, Step
from shared.kombu_messages import ClassifyQueue, Lanes
from shared.redis_client import unavailable_as_store_error
from shared.schemas import CallbackState, Job, JobResult, NewJob

T = TypeVar("T")

DEFAULT_MAX_ATTEMPTS = 3


class JobStore:
    """Create, read and move jobs through their states in Redis, blocking."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        keeping: ops.Keeping | None = None,
    ) -> None:
        """`keeping`: how outcomes are recorded (replicas, webhooks), beyond the TTL."""
        self._redis = client
        self._scripts = LoadedScripts()
        self._ttl = ttl_seconds
        self._max_attempts = max_attempts
        self._keeping = keeping or ops.Keeping(ttl_seconds)

    def _run(self, operation: Operation[T]) -> T:
        exchange = Exchange(operation)
        with unavailable_as_store_error():
            while exchange.step is not None:
                if loads := self._scripts.loads_for(exchange.step):
                    self._send(loads)
                try:
                    exchange.reply(self._send(exchange.step))
                except redis.ResponseError as exc:
                    if isinstance(exc, redis.exceptions.NoScriptError):
                        self._scripts.forget()
                    exchange.fail(exc)
        return exchange.value

    def _send(self, step: Step) -> list[Any]:
        if len(step.commands) == 1 and not step.atomic:
            return [self._redis.execute_command(*step.commands[0])]  # type: ignore[no-untyped-call]
        with self._redis.pipeline(transaction=step.atomic) as pipe:
            for command in step.commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return pipe.execute()

    def enqueue_requests(
        self,
        requests: Sequence[Request],
        *,
        queues: Lanes,
        limits: QueueLimits,
        grouping: Grouping,
    ) -> list[Outcome]:
        """Each request's jobs, or the error that refused it (see `intake.enqueue`)."""
        operation = intake.enqueue(
            requests, queues=queues, limits=limits, ttl=self._ttl, grouping=grouping
        )
        return self._run(operation).outcomes

    def enqueue(
        self,
        uploads: Sequence[tuple[NewJob, bytes]],
        *,
        queues: Lanes,
        limits: QueueLimits,
        grouping: Grouping = ONE_EACH,
    ) -> list[Job]:
        """One request's jobs, in groups by `grouping` (default: a message each)."""
        (outcome,) = self.enqueue_requests(
            [Request(uploads)], queues=queues, limits=limits, grouping=grouping
        )
        if isinstance(outcome, ImgclfError):
            raise outcome
        return outcome

    def run(self, operation: Operation[T]) -> T:
        """Any of the store's operations (`shared.jobs.collections`' among them)."""
        return self._run(operation)

    def get(self, job_id: str) -> Job:
        return self._run(ops.get(job_id))

    def claim_group(
        self, delivery: Delivery, *, worker_id: str = "", takeover: bool = True
    ) -> Claimed:
        return self._run(
            ops.claim(
                delivery,
                worker_id=worker_id,
                max_attempts=self._max_attempts,
                keeping=self._keeping,
                takeover=takeover,
            )
        )

    def claim(self, job_id: str, *, worker_id: str = "", takeover: bool = True) -> Claim | None:
        """One job alone, from a message of its own."""
        claimed = self.claim_group(Delivery.alone(job_id), worker_id=worker_id, takeover=takeover)
        return claimed.jobs[0] if claimed.jobs else None

    def succeed(self, job_id: str, result: JobResult) -> bool:
        return self._run(ops.succeed(job_id, result, self._keeping))

    def fail(self, job_id: str, error: ImgclfError) -> bool:
        return self._run(ops.fail(job_id, error, self._keeping))

    def finish(self, outcomes: Sequence[ops.Outcome]) -> list[bool]:
        """Record several jobs' outcomes in one round trip."""
        return self._run(ops.finish(outcomes, self._keeping))

    def cancel(self, job_id: str) -> Job:
        return self._run(ops.cancel(job_id))

    def record_callback(self, job_id: str, state: CallbackState) -> bool:
        return self._run(ops.record_callback(job_id, state))

    def running_count(self) -> int:
        return self._run(ops.running_count())

    def queued_bytes(self) -> int:
        return self._run(ops.queued_bytes())

    def finished_counts(self) -> dict[str, int]:
        return self._run(ops.finished_counts())

    def running_jobs(self) -> dict[str, str]:
        return self._run(recovery.running_jobs())

    def requeue_orphan(
        self,
        job_id: str,
        *,
        worker_id: str,
        queues: Lanes,
        max_running_ms: int = 0,
        hand_back: bool = False,
    ) -> int:
        return self._run(
            recovery.requeue_orphan(
                job_id,
                worker_id=worker_id,
                queues=queues,
                max_running_ms=max_running_ms,
                hand_back=hand_back,
            )
        )

    def lost_messages(
        self, queue: ClassifyQueue, *, priority: str, grace_ms: int, limit: int
    ) -> list[str]:
        return self._run(
            recovery.lost_messages(queue, priority=priority, grace_ms=grace_ms, limit=limit)
        )

    def queue_lengths(self, queues: Sequence[ClassifyQueue]) -> dict[str, int]:
        return self._run(ops.queue_lengths(queues))

    def queued_counts(self, models: Sequence[str]) -> dict[str, dict[str, int]]:
        return self._run(ops.queued_counts(models))

    def republish(self, job_id: str, *, queue: ClassifyQueue) -> bool:
        return self._run(recovery.republish(job_id, queue=queue))


class AsyncJobStore:
    """The job store for code on an event loop: the API's requests create, read and cancel jobs
    without a thread hop."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        ttl_seconds: int,
        replication: Replication | None = None,
        webhooks: ClassifyQueue | None = None,
    ) -> None:
        self._redis = client
        self._scripts = LoadedScripts()
        self._ttl = ttl_seconds
        self._replication = replication
        self._webhooks = webhooks

    async def _run(self, operation: Operation[T]) -> T:
        exchange = Exchange(operation)
        with unavailable_as_store_error():
            while exchange.step is not None:
                if loads := self._scripts.loads_for(exchange.step):
                    await _send(self._redis, loads)
                try:
                    exchange.reply(await _send(self._redis, exchange.step))
                except redis.ResponseError as exc:
                    if isinstance(exc, redis.exceptions.NoScriptError):
                        self._scripts.forget()
                    exchange.fail(exc)
        return exchange.value

    async def enqueue(
        self,
        requests: Sequence[Request],
        *,
        queues: Lanes,
        limits: QueueLimits,
        grouping: Grouping,
    ) -> list[Outcome]:
        """Each request's jobs (for an Idempotency-Key seen before, the jobs it made then), or
        the error that refused it; one transaction for them all, and with replication one wait
        for replicas: where they do not copy the jobs in time, every request fails (the jobs
        taken back) with `StoreUnavailableError`."""
        replicate = self._replication is not None and self._replication.replicas > 0
        if replicate:
            requests = [_pending(request) for request in requests]
        queued = await self._run(
            intake.enqueue(requests, queues=queues, limits=limits, ttl=self._ttl, grouping=grouping)
        )
        written = [
            request
            for request, outcome in zip(requests, queued.outcomes, strict=True)
            if isinstance(outcome, list) and [job.job_id for job in outcome] == [*request.job_ids]
        ]
        if not written or not replicate:
            return queued.outcomes
        assert self._replication is not None
        records = [request.idempotency for request in written if request.idempotency is not None]
        try:
            await self._run(
                intake.replicated_or_withdrawn(
                    written, queued.messages, queues=queues, replication=self._replication
                )
            )
        except StoreUnavailableError:
            await self._run(intake.settle_idempotency(records, accepted=False))
            raise
        await self._run(intake.settle_idempotency(records, accepted=True))
        return queued.outcomes

    @property
    def webhooks(self) -> ClassifyQueue | None:
        """Where canceled jobs' webhooks go."""
        return self._webhooks

    async def run(self, operation: Operation[T]) -> T:
        """Any of the store's operations (`shared.jobs.collections`' among them)."""
        return await self._run(operation)

    async def get(self, job_id: str) -> Job:
        return await self._run(ops.get(job_id))

    async def failures(self, owner: str, *, limit: int) -> list[Job]:
        return await self._run(ops.failures(owner, limit=limit))

    async def with_image(self, job_id: str) -> tuple[Job, bytes | None]:
        return await self._run(ops.with_image(job_id))

    async def cancel(self, job_id: str) -> Job:
        return await self._run(ops.cancel(job_id, self._webhooks))

    async def queued_counts(self, models: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self._run(ops.queued_counts(models))

    async def running_count(self) -> int:
        return await self._run(ops.running_count())

    async def queued_bytes(self) -> int:
        return await self._run(ops.queued_bytes())


def _pending(request: Request) -> Request:
    """`request` with its Idempotency-Key's record pending until replicas hold its jobs."""
    if request.idempotency is None:
        return request
    return replace(request, idempotency=replace(request.idempotency, pending=True))


async def _send(client: redis.asyncio.Redis, step: Step) -> list[Any]:
    if len(step.commands) == 1 and not step.atomic:
        return [await client.execute_command(*step.commands[0])]  # type: ignore[no-untyped-call]
    async with client.pipeline(transaction=step.atomic) as pipe:
        for command in step.commands:
            pipe.execute_command(*command)
        return await pipe.execute()

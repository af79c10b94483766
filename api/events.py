"""Wake long-polling requests the moment their job ends, over one Redis pub/sub connection.

Workers announce a job on `imgclf:events` when it reaches a terminal state: its id and the job
as it ended. Each API process keeps a single subscription and hands that final state to whichever
requests wait on the id, so long-polls cost no Redis traffic while they wait, nor a read when they
wake. Waiters also re-read the job every few seconds, which covers any event missed while the
subscription was reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import redis
import redis.asyncio

from api import metrics
from shared.backoff import Backoff
from shared.jobs import EVENTS_CHANNEL, announced_job
from shared.schemas import Job

log = logging.getLogger(__name__)

RECONNECT_DELAY_SECONDS = 1.0
STOP_SECONDS = 5.0
# Waiters re-read the job this often even without an event: a safety net, not the mechanism.
RECHECK_SECONDS = 2.0


@dataclass(slots=True)
class Finished:
    """Set when a watched job ends, with the job as its event described it (if it did)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    job: Job | None = None


class JobEvents:
    """Fan job-finished events out to the requests waiting for them."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._waiters: dict[str, list[Finished]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="imgclf-job-events")

    async def stop(self) -> None:
        """Stop listening and close the connections, within STOP_SECONDS whatever state they
        are in: a process must be able to shut down while Redis hangs. The cancel is repeated:
        on Python 3.11 a cancel that meets a timeout inside redis-py can be swallowed."""
        deadline = asyncio.get_running_loop().time() + STOP_SECONDS
        while self._task is not None and not self._task.done():
            self._task.cancel()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                log.warning("job events: listener did not stop within %s s", STOP_SECONDS)
                break
            await asyncio.wait({self._task}, timeout=min(0.5, remaining))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_SECONDS):
                await self._client.aclose()

    @contextlib.asynccontextmanager
    async def watch(self, job_ids: Sequence[str]) -> AsyncIterator[list[Finished]]:
        """Each set when its job ends; register them *before* reading the jobs' status."""
        watches = [Finished() for _ in job_ids]
        for job_id, finished in zip(job_ids, watches, strict=True):
            self._waiters[job_id].append(finished)
        try:
            yield watches
        finally:
            for job_id, finished in zip(job_ids, watches, strict=True):
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    waiters.remove(finished)
                    if not waiters:
                        del self._waiters[job_id]

    def notify(self, message: str) -> None:
        """Wake the requests waiting on the job a message announces (parsed only if any wait)."""
        job_id = message.partition(" ")[0]
        waiters = self._waiters.get(job_id)
        if not waiters:
            return
        _, job = announced_job(message)
        for finished in waiters:
            finished.job = job
            finished.event.set()

    async def _listen(self) -> None:
        """Listen until stopped, whatever happens: any error (Redis down, an ACL without channel
        permission, a malformed event) is logged and retried with backoff, and every pass sets
        `imgclf_loop_last_success_timestamp_seconds{loop="events"}` for an alert to watch."""
        backoff = Backoff(first=RECONNECT_DELAY_SECONDS)
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(EVENTS_CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None:
                            self._deliver(message["data"])
                        metrics.loop_succeeded("events")
                        backoff.reset()
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("job events: Redis unavailable (%s); reconnecting", exc)
                await asyncio.sleep(backoff.next_delay())
            except Exception:
                log.exception("job events: listener failed; restarting it")
                await asyncio.sleep(backoff.next_delay())

    def _deliver(self, data: bytes) -> None:
        try:
            self.notify(data.decode())
        except (UnicodeDecodeError, ValueError) as exc:  # not an event of ours: skip it
            log.warning("job events: skipped a malformed event (%s)", exc)


async def until_all_terminal(
    jobs: Sequence[Job],
    watches: Sequence[Finished],
    read: Callable[[str], Awaitable[Job]],
    *,
    deadline: float,
) -> list[Job]:
    """Every job of `jobs` once all are terminal, or as they stand at `deadline` (monotonic)."""
    return await asyncio.gather(
        *(until_terminal(j, w, read, deadline=deadline) for j, w in zip(jobs, watches, strict=True))
    )


async def until_terminal(
    job: Job, finished: Finished, read: Callable[[str], Awaitable[Job]], *, deadline: float
) -> Job:
    """`job` once it is terminal (from its event, or `read` again every RECHECK_SECONDS), or as
    it stands at `deadline` (monotonic)."""
    while True:
        remaining = deadline - time.monotonic()
        if job.status.terminal or remaining <= 0:
            return job
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, RECHECK_SECONDS)):
                await finished.event.wait()
        job = finished.job or await read(job.job_id)

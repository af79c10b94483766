"""Wake long-polling requests the moment their job ends, over one Redis pub/sub connection.

Workers publish a job's id on `imgclf:events` when it reaches a terminal state. Each API process
keeps a single subscription and wakes whichever requests wait on that id, so long-polls cost no
Redis traffic while they wait. Waiters also re-read the job every few seconds, which covers any
event missed while the subscription was reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

import redis
import redis.asyncio

from shared.jobs import EVENTS_CHANNEL

log = logging.getLogger(__name__)

RECONNECT_DELAY_SECONDS = 1.0


class JobEvents:
    """Fan job-finished events out to the requests waiting for them."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._client = client
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="imgclf-job-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set when `job_id` ends; register it *before* reading the job's status."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def _notify(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(EVENTS_CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None:
                            self._notify(message["data"].decode())
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("job events: Redis unavailable (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)

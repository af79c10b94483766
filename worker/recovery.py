"""Put back the jobs of worker processes that died, and queued jobs whose message was lost, so no
accepted job waits for an hour or for ever.

Celery requeues the task of a prefork child that dies (`reject_on_worker_lost`), but when a whole
node dies its unacknowledged messages only return after the broker visibility timeout. Each node's
main process therefore sweeps every few seconds: a running job whose worker process has stopped
sending heartbeats goes back to 'queued' with a new queue message, in one atomic step. Running a
job twice is safe (the first recorded outcome wins), so a sweep that races a slow heartbeat costs
time, never a result.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis

from shared import workers
from shared.backoff import Backoff
from shared.errors import ServiceUnavailableError
from shared.jobs import JobStore
from shared.jobs.keys import SWEEPER_LOCK_KEY
from shared.kombu_messages import Lanes
from shared.queue import broker_client_name
from shared.settings import Settings
from worker import metrics, watchdog

log = logging.getLogger(__name__)


# A queued job's message must have been missing this long before it is published again: a
# consumer pops a message and records it as unacked a moment later.
LOST_MESSAGE_GRACE_SECONDS = 10.0
LOST_PER_SWEEP = 100


def sweep(
    store: JobStore,
    client: redis.Redis,
    queues: Lanes,
    *,
    max_running_seconds: float = 0,
    lost_grace_seconds: float = LOST_MESSAGE_GRACE_SECONDS,
) -> list[str]:
    """Put back on its lane's queue (`queues`) every running job whose worker process is
    gone or that has run longer than `max_running_seconds` (0: no limit), and every queued job
    whose message was lost; returns their ids."""
    requeued: list[str] = []
    overdue: list[str] = []
    max_running_ms = int(max_running_seconds * 1000)
    for job_id, worker_id in store.running_jobs().items():
        outcome = store.requeue_orphan(
            job_id, worker_id=worker_id, queues=queues, max_running_ms=max_running_ms
        )
        (requeued if outcome == 1 else overdue if outcome == 2 else []).append(job_id)
    grace_ms = int(lost_grace_seconds * 1000)
    republished = []
    for model in queues.models:
        for priority, queue in queues.of(model).items():
            lost = store.lost_messages(
                queue, priority=priority, grace_ms=grace_ms, limit=LOST_PER_SWEEP
            )
            republished += [job_id for job_id in lost if store.republish(job_id, queue=queue)]
    workers.prune(client)
    for jobs, reason, why in (
        (requeued, "dead_worker", "of dead worker processes"),
        (overdue, "overdue", "running past the hard time limit"),
        (republished, "lost_message", "whose queue message was lost"),
    ):
        if jobs:
            metrics.RECOVERED_JOBS.labels(reason=reason).inc(len(jobs))
            log.warning("requeued %d job(s) %s: %s", len(jobs), why, jobs)
    return requeued + overdue + republished


def start_sweeper(
    store: JobStore,
    client: redis.Redis,
    queues: Lanes,
    *,
    node: str,
    settings: Settings,
) -> threading.Event:
    """Sweep every RECOVERY_INTERVAL_SECONDS in a daemon thread; set the returned event to stop
    it.

    A short Redis lock lets one node sweep per interval however many nodes run. After Redis was
    unreachable the sweep waits one heartbeat lifetime: every live process's heartbeat expired
    meanwhile, and must be renewed before its jobs can be told from a dead one's. The loop
    survives any error, with backoff, and reports each pass in
    `imgclf_loop_last_success_timestamp_seconds{loop="recovery"}`.
    """
    sweeper = _Sweeper(store, client, queues, node=node, settings=settings)
    threading.Thread(target=sweeper.loop, name="imgclf-recovery", daemon=True).start()
    return sweeper.stop


class _Sweeper:
    def __init__(
        self,
        store: JobStore,
        client: redis.Redis,
        queues: Lanes,
        *,
        node: str,
        settings: Settings,
    ) -> None:
        self.stop = threading.Event()
        self._store, self._client, self._queues, self._node = store, client, queues, node
        self._interval = settings.recovery_interval_seconds
        self._grace = 3 * settings.worker_heartbeat_seconds
        self._max_running = settings.task_time_limit_seconds + self._grace
        self._watch = watchdog.StallWatch(settings.worker_stall_seconds)
        self._consumed = queues.consumed(settings.worker_model_names())
        self._consumer = broker_client_name()

    def loop(self) -> None:
        interval = self._interval
        backoff = Backoff(first=interval, most=max(interval, 60.0))
        healthy_since: float | None = time.monotonic()
        delay = interval
        while not self.stop.wait(delay):
            try:
                self._one_pass(healthy_since := healthy_since or time.monotonic())
                delay = interval
                backoff.reset()
            except (ServiceUnavailableError, redis.RedisError) as exc:
                log.warning("recovery sweep skipped: %s", exc)
                healthy_since, delay = None, backoff.next_delay()
            except Exception:
                log.exception("recovery sweep failed; retrying")
                delay = backoff.next_delay()

    def _one_pass(self, healthy_since: float) -> None:
        client = self._client
        workers.forget_dead_children(client, hostname=self._node, node_pid=os.getpid())
        self._check_consumer()
        locked = client.set(SWEEPER_LOCK_KEY, self._node, nx=True, px=int(self._interval * 1000))
        if locked and time.monotonic() - healthy_since >= self._grace:
            sweep(self._store, client, self._queues, max_running_seconds=self._max_running)
        metrics.loop_succeeded("recovery")

    def _check_consumer(self) -> None:
        if self._watch.stall_seconds <= 0:
            return
        progress = watchdog.PROGRESS
        lost_slots = progress.lost_slots()
        fetching = watchdog.consumer_fetching(self._client, self._consumer)
        # The queue's length matters only where CLIENT LIST cannot tell whether it fetches.
        queued = sum(self._store.queue_lengths(self._consumed).values()) if fetching is None else 0
        look = watchdog.Look(
            fetching=fetching,
            queued=queued,
            held=progress.held(),
            received=progress.received,
            lost_slots=lost_slots,
        )
        if self._watch.stalled(time.monotonic(), look):
            watchdog.stop_stalled_node(self._watch.stall_seconds, lost_slots=lost_slots)

"""Put back the jobs of worker processes that died, so no accepted job waits for an hour.

Celery requeues the task of a prefork child that dies (`reject_on_worker_lost`), but when a whole
node dies its unacknowledged messages only return after the broker visibility timeout. Each node's
main process therefore sweeps every few seconds: a running job whose worker process has stopped
sending heartbeats goes back to 'queued' with a new queue message, in one atomic step. Running a
job twice is safe (the first recorded outcome wins), so a sweep that races a slow heartbeat costs
time, never a result.
"""

from __future__ import annotations

import logging
import threading

import redis

from shared import workers
from shared.errors import ServiceUnavailableError
from shared.jobs import JobStore
from shared.jobs.keys import SWEEPER_LOCK_KEY
from shared.kombu_messages import ClassifyQueue

log = logging.getLogger(__name__)


def sweep(store: JobStore, client: redis.Redis, queue: ClassifyQueue) -> list[str]:
    """Requeue, with a new message on `queue`, every running job whose worker process is gone;
    returns their ids."""
    alive = {info.worker_id for info in workers.alive(client)}
    requeued = []
    for job_id, worker_id in store.running_jobs().items():
        if worker_id in alive:
            continue
        if store.requeue_orphan(job_id, worker_id=worker_id, queue=queue):
            requeued.append(job_id)
    if requeued:
        log.warning("requeued %d job(s) of dead worker processes: %s", len(requeued), requeued)
    return requeued


def start_sweeper(
    store: JobStore,
    client: redis.Redis,
    queue: ClassifyQueue,
    *,
    interval: float,
    node: str,
) -> threading.Event:
    """Sweep every `interval` seconds in a daemon thread; set the returned event to stop it.

    A short Redis lock lets one node sweep per interval however many nodes run.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                if client.set(SWEEPER_LOCK_KEY, node, nx=True, px=int(interval * 1000)):
                    sweep(store, client, queue)
            except (ServiceUnavailableError, redis.RedisError) as exc:
                log.warning("recovery sweep skipped: %s", exc)

    threading.Thread(target=loop, name="imgclf-recovery", daemon=True).start()
    return stop

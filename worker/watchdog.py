"""A node that has stopped taking jobs, told from its own progress rather than its heartbeats.

After a network cut, a node's Celery consumer can stay stuck while its child processes go on
heartbeating: `/ready` counts it, and it fetches no more messages. Seen here: an ack that timed
out left its message counted as delivered in kombu's prefetch window, for good, so each such
ack took one of the node's slots, and once all were gone it never fetched again (worker nodes
now free such a slot: `shared.broker_transport`; this watch stays for any other way to stick).

The node's main process watches for two states, each held for WORKER_STALL_SECONDS:
- slots lost: kombu's window counts more deliveries than the jobs Celery holds;
- idle without reason: the node holds no job, has received none, and is not fetching. A healthy
  idle consumer is always in a BRPOP, renewed every second, which Redis's CLIENT LIST shows under
  the connection's name (`shared.queue.broker_client_name`); where CLIENT LIST is not allowed
  (some managed Redis services), messages waiting in the queue stand in for it.
The node then shuts down warmly (its running jobs finish, the lost messages go back to the
queue) so that its supervisor (Docker's restart policy, Kubernetes, `imgclf-stack`) starts a
fresh one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from celery.signals import task_received, worker_shutdown
from celery.worker import state

from shared.workers import STALLED_EXIT_CODE

log = logging.getLogger(__name__)

# After asking the node to stop, how long its warm shutdown may take before the process exits
# hard (a stuck consumer can block the shutdown itself).
HARD_EXIT_AFTER_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Look:
    """What the node sees on one pass.

    `fetching`: whether its consumer is in a fetch (None: cannot tell); `queued`: messages in
    the queue; `held`: jobs it has taken and not finished; `received`: messages it has received
    since it started; `lost_slots`: prefetch slots taken by deliveries Celery no longer holds.
    """

    fetching: bool | None
    queued: int
    held: int
    received: int
    lost_slots: int = 0


@dataclass
class StallWatch:
    """Pure bookkeeping: fed what the node sees each pass, says when it has stalled."""

    stall_seconds: float
    _waiting_since: float | None = None
    _last_received: int = -1

    def stalled(self, now: float, look: Look) -> bool:
        """Whether the node has looked stuck on every pass for `stall_seconds`."""
        progressed = self._last_received not in (-1, look.received)
        self._last_received = look.received
        not_fetching = not look.fetching if look.fetching is not None else look.queued > 0
        idle_for_no_reason = not_fetching and look.held == 0 and not progressed
        if self.stall_seconds <= 0 or not (idle_for_no_reason or look.lost_slots > 0):
            self._waiting_since = None
            return False
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since >= self.stall_seconds


@dataclass
class NodeProgress:
    """What this node's consumer has done, as Celery's main process knows it."""

    received: int = 0
    # Celery's consumer (the `worker_ready` sender); its task consumer changes on reconnection.
    consumer: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_received(self, **_: Any) -> None:
        with self._lock:
            self.received += 1

    @staticmethod
    def held() -> int:
        return len(state.reserved_requests)

    def lost_slots(self) -> int:
        """Prefetch slots kombu counts as delivered beyond the jobs Celery holds."""
        try:
            qos = self.consumer.task_consumer.channel.qos
            window = int(qos.prefetch_count or 0)
            delivered = window - int(qos.can_consume_max_estimate())
        except AttributeError:  # not consuming yet, or reconnecting
            return 0
        return max(0, delivered - self.held()) if window else 0


# A fetch is renewed every second (kombu's brpop_timeout); this much older, it has not been.
FETCH_STALE_SECONDS = 10


def consumer_fetching(client: redis.Redis, name: str) -> bool | None:
    """Whether a connection named `name` is in a fresh BRPOP; None where CLIENT LIST is refused."""
    try:
        connections = client.client_list()
    except redis.exceptions.NoPermissionError:
        return None
    except redis.ResponseError as exc:  # a renamed or disabled command
        log.debug("CLIENT LIST refused: %s", exc)
        return None
    return any(
        c.get("name") == name
        and c.get("cmd") == "brpop"
        and int(c.get("idle", 0)) < FETCH_STALE_SECONDS
        for c in connections
    )


PROGRESS = NodeProgress()
task_received.connect(PROGRESS.on_received, weak=False)
_stalled = threading.Event()


@worker_shutdown.connect  # type: ignore[untyped-decorator]
def _exit_as_stalled(**_: Any) -> None:
    # Celery exits 0 after a warm shutdown; a stalled node's supervisor must see a failure.
    if _stalled.is_set():
        logging.shutdown()
        os._exit(STALLED_EXIT_CODE)


def stop_stalled_node(seconds: float, *, lost_slots: int) -> None:
    """Ask this node, once, to shut down warmly (exit status STALLED_EXIT_CODE), and exit hard
    if that does not finish."""
    if _stalled.is_set():
        return
    why = (
        f"{lost_slots} of its prefetch slots held by deliveries it no longer runs"
        if lost_slots
        else "it has held, received and fetched no job"
    )
    log.error(
        "this node's consumer is stuck (for %.0f s, %s); stopping so that its supervisor "
        "starts a fresh node",
        seconds,
        why,
    )
    _stalled.set()
    timer = threading.Timer(HARD_EXIT_AFTER_SECONDS, os._exit, args=(STALLED_EXIT_CODE,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)

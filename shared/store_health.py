"""What one process has seen of Redis lately: after a failure, heartbeats of live processes may
have expired, so for a while their jobs must not be taken over; and calls retried while Redis
does not take them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from shared.backoff import Backoff
from shared.errors import StoreUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreHealth:
    """Remembers this process's last failed Redis call (any thread)."""

    def __init__(self, *, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._failed_at: float | None = None
        self._lock = threading.Lock()

    def failed(self) -> None:
        with self._lock:
            self._failed_at = time.monotonic()

    def settled(self) -> bool:
        """No failure within `settle_seconds`: live processes have renewed their heartbeats."""
        with self._lock:
            failed_at = self._failed_at
        return failed_at is None or time.monotonic() - failed_at >= self.settle_seconds

    def retrying(self, what: str, call: Callable[[], T], *, deadline: float) -> T:
        """`call`, retried with backoff while the store is unavailable and the next try would
        start before `deadline` (monotonic); then `StoreUnavailableError`. Each failure counts."""
        backoff = Backoff()
        while True:
            try:
                return call()
            except StoreUnavailableError as exc:
                self.failed()
                delay = backoff.next_delay()
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("job store unavailable for a %s (%s); retrying", what, exc.message)
                time.sleep(delay)

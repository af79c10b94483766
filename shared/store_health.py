"""What one process has seen of Redis lately: after a failure, heartbeats of live processes may
have expired, so for a while their jobs must not be taken over."""

from __future__ import annotations

import threading
import time


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

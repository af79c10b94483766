"""Hand a worker process's freed heap back to the OS once it goes idle.

Decoding a large photo briefly needs tens of MB (a 16-megapixel progressive JPEG's DCT
coefficients); glibc keeps freed memory in its arenas, so without trimming each process would stay
at its largest image's peak. Trimming after every job made the next large decode fault all of
that memory in again, a measurable share of a worker's CPU (docs/PERFORMANCE.md), and it never
lowered the peak, which a busy process reaches either way. So the trim waits until the process
has been idle for a moment: busy processes keep their warm heap, idle ones shrink.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections.abc import Iterator

IDLE_SECONDS = 1.0

# glibc's malloc_trim; absent on other platforms and C libraries, where trimming is skipped.
_MALLOC_TRIM = (
    getattr(ctypes.CDLL(ctypes.util.find_library("c")), "malloc_trim", None)
    if sys.platform.startswith("linux")
    else None
)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class IdleTrimmer:
    """Trims once per idle spell, and only while the process holds more than `above_mb` MB."""

    def __init__(self, *, above_mb: int, idle_seconds: float = IDLE_SECONDS) -> None:
        self._above_mb = above_mb
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._busy = False
        self._last_job_end = time.monotonic()
        self._trimmed = False

    @contextlib.contextmanager
    def job(self) -> Iterator[None]:
        """Mark the process busy for the duration of one job."""
        with self._lock:
            self._busy = True
        try:
            yield
        finally:
            with self._lock:
                self._busy, self._last_job_end, self._trimmed = False, time.monotonic(), False

    def trim_if_idle(self) -> bool:
        """Trim if no job has run for `idle_seconds` and this idle spell has not trimmed yet.

        A job may start while the trim runs; glibc's trim is thread-safe, it only slows that
        job's first allocations a little.
        """
        with self._lock:
            idle = time.monotonic() - self._last_job_end >= self._idle_seconds
            if self._busy or self._trimmed or not idle:
                return False
            self._trimmed = True
        if resident_mb() <= self._above_mb:
            return False
        return release_free_memory()

    def run(self, stop: threading.Event) -> None:
        """Check every `idle_seconds` until `stop` is set (the body of a daemon thread)."""
        while not stop.wait(self._idle_seconds):
            self.trim_if_idle()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS now; False where glibc's trim is missing."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * _PAGE_SIZE / 2**20

"""Soft time limits: each job's own, and the task's, which reaches the task and never its
process between tasks.

The node's main process times each task and signals its process (SIGUSR1) when the soft limit
passes; billiard raises `SoftTimeLimitExceeded` wherever that process then is. When the main
process's loop was held up (by a stalled Redis: its acks and event heartbeats wait on it), it can
fire a limit after the task has ended and before it has read the task's result, and the
exception then kills the idle process, whose replacement takes seconds (a lost process, a
reloaded model). Here the signal is passed on only while a task runs; otherwise it is logged.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from shared.errors import JobTimeoutError

log = logging.getLogger(__name__)

_running = False
_installed = False


@contextmanager
def armed() -> Iterator[None]:
    """Around a task: the soft time limit applies inside, and nowhere else."""
    global _running
    _install()
    _running = True
    try:
        yield
    finally:
        _running = False


def _install() -> None:
    # billiard installs its handler after the process initializers have run, so the guard goes
    # in on the first task.
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return  # a threads pool: no soft limits there
    handler = signal.getsignal(signal.SIGUSR1)
    if not callable(handler):
        return
    signal.signal(signal.SIGUSR1, _guarding(handler))
    _installed = True


def _guarding(handler: Callable[[int, FrameType | None], Any]) -> Callable[..., None]:
    def guarded(signum: int, frame: FrameType | None) -> None:
        if _running:
            handler(signum, frame)
        else:
            log.warning("a soft time limit arrived after its task had ended: ignored")

    return guarded


@contextmanager
def per_job(seconds: float | None) -> Iterator[None]:
    """Inside, a job that runs past `seconds` is stopped with `JobTimeoutError` (SIGALRM), so
    each job of a group keeps its own limit; none outside the main thread, where signals cannot
    reach (a threads pool)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise JobTimeoutError(f"Processing took longer than the time limit ({seconds:g} s)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

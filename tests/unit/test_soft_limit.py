from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from worker import soft_limit

pytestmark = pytest.mark.unit


class SoftLimitError(Exception):
    """What billiard's handler raises into the process (SoftTimeLimitExceeded)."""


def _billiard_handler(signum: int, frame: object) -> None:
    raise SoftLimitError


@pytest.fixture
def billiard_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    previous = signal.signal(signal.SIGUSR1, _billiard_handler)
    monkeypatch.setattr(soft_limit, "_installed", False)
    yield
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.usefixtures("billiard_handler")
def test_a_soft_limit_reaches_a_running_task_and_not_the_idle_process() -> None:
    with soft_limit.armed():
        pass  # the first task puts the guard in
    os.kill(os.getpid(), signal.SIGUSR1)  # late, between tasks: ignored
    with soft_limit.armed(), pytest.raises(SoftLimitError):
        os.kill(os.getpid(), signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGUSR1)  # the task has ended: ignored again

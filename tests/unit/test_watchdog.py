"""A worker node that stops taking jobs is told from its own progress."""

from __future__ import annotations

import pytest

from worker.watchdog import StallWatch

pytestmark = pytest.mark.unit


def test_an_idle_node_whose_consumer_does_not_fetch_has_stalled() -> None:
    watch = StallWatch(stall_seconds=60)
    assert not watch.stalled(now=0, fetching=False, queued=0, held=0, received=10)
    assert not watch.stalled(now=30, fetching=False, queued=0, held=0, received=10)
    assert watch.stalled(now=61, fetching=False, queued=0, held=0, received=10)


def test_without_client_list_jobs_waiting_while_an_idle_node_takes_none_is_a_stall() -> None:
    watch = StallWatch(stall_seconds=60)
    assert not watch.stalled(now=0, fetching=None, queued=0, held=0, received=10)
    assert not watch.stalled(now=61, fetching=None, queued=0, held=0, received=10)
    assert not watch.stalled(now=62, fetching=None, queued=5, held=0, received=10)
    assert watch.stalled(now=123, fetching=None, queued=5, held=0, received=10)


@pytest.mark.parametrize(
    ("fetching", "held", "received"),
    [
        (True, 0, 10),  # an idle node in a fetch is just idle
        (False, 2, 10),  # the node is busy with jobs it took
        (False, 0, 11),  # it received a job since the last look: it is consuming
    ],
)
def test_a_fetch_a_busy_node_or_any_progress_is_no_stall(
    fetching: bool, held: int, received: int
) -> None:
    watch = StallWatch(stall_seconds=60)
    assert not watch.stalled(now=0, fetching=False, queued=5, held=0, received=10)
    assert not watch.stalled(now=59, fetching=fetching, queued=5, held=held, received=received)
    # ... and the clock starts again from there.
    assert not watch.stalled(now=100, fetching=False, queued=5, held=0, received=received)
    assert watch.stalled(now=160, fetching=False, queued=5, held=0, received=received)


def test_zero_turns_the_watch_off() -> None:
    watch = StallWatch(stall_seconds=0)
    assert not watch.stalled(now=0, fetching=False, queued=5, held=0, received=0)
    assert not watch.stalled(now=10_000, fetching=False, queued=5, held=0, received=0)

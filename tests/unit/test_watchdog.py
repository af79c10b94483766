"""A worker node that stops taking jobs is told from its own progress."""

from __future__ import annotations

import pytest

from worker.watchdog import Look, StallWatch

pytestmark = pytest.mark.unit


def test_an_idle_node_whose_consumer_does_not_fetch_has_stalled() -> None:
    watch = StallWatch(stall_seconds=60)
    assert not watch.stalled(0, Look(fetching=False, queued=0, held=0, received=10))
    assert not watch.stalled(30, Look(fetching=False, queued=0, held=0, received=10))
    assert watch.stalled(61, Look(fetching=False, queued=0, held=0, received=10))


def test_without_client_list_jobs_waiting_while_an_idle_node_takes_none_is_a_stall() -> None:
    watch = StallWatch(stall_seconds=60)
    assert not watch.stalled(0, Look(fetching=None, queued=0, held=0, received=10))
    assert not watch.stalled(61, Look(fetching=None, queued=0, held=0, received=10))
    assert not watch.stalled(62, Look(fetching=None, queued=5, held=0, received=10))
    assert watch.stalled(123, Look(fetching=None, queued=5, held=0, received=10))


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
    assert not watch.stalled(0, Look(fetching=False, queued=5, held=0, received=10))
    assert not watch.stalled(59, Look(fetching=fetching, queued=5, held=held, received=received))
    # ... and the clock starts again from there.
    assert not watch.stalled(100, Look(fetching=False, queued=5, held=0, received=received))
    assert watch.stalled(160, Look(fetching=False, queued=5, held=0, received=received))


def test_prefetch_slots_held_by_deliveries_the_node_no_longer_runs_are_a_stall() -> None:
    """An ack that timed out leaves its delivery in kombu's window: the node still works, with
    one slot fewer, and its progress does not excuse it."""
    watch = StallWatch(stall_seconds=60)
    assert not watch.stalled(0, Look(fetching=True, queued=0, held=1, received=10, lost_slots=1))
    assert not watch.stalled(30, Look(fetching=True, queued=0, held=1, received=20, lost_slots=1))
    assert watch.stalled(61, Look(fetching=True, queued=0, held=1, received=30, lost_slots=1))
    # A delivery on its way to becoming a job counts for one look, not for a minute.
    assert not watch.stalled(62, Look(fetching=True, queued=0, held=1, received=31, lost_slots=0))
    assert not watch.stalled(130, Look(fetching=True, queued=0, held=1, received=32, lost_slots=1))


def test_zero_turns_the_watch_off() -> None:
    watch = StallWatch(stall_seconds=0)
    assert not watch.stalled(0, Look(fetching=False, queued=5, held=0, received=0))
    assert not watch.stalled(10_000, Look(fetching=False, queued=5, held=0, received=0))

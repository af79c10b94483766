from __future__ import annotations

import pytest

from worker import memory
from worker.memory import IdleTrimmer

pytestmark = pytest.mark.unit


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(memory, "_MALLOC_TRIM", calls.append)
    return calls


def test_an_idle_process_over_the_threshold_trims_once_per_idle_spell(trims: list[int]) -> None:
    trimmer = IdleTrimmer(above_mb=0, idle_seconds=0)
    assert trimmer.trim_if_idle()
    assert not trimmer.trim_if_idle()  # still the same idle spell
    with trimmer.job():
        pass
    assert trimmer.trim_if_idle()
    assert trims == [0, 0]


def test_a_busy_or_recently_busy_process_keeps_its_heap(trims: list[int]) -> None:
    busy = IdleTrimmer(above_mb=0, idle_seconds=0)
    with busy.job():
        assert not busy.trim_if_idle()
    recent = IdleTrimmer(above_mb=0, idle_seconds=3600)
    with recent.job():
        pass
    assert not recent.trim_if_idle()
    assert trims == []


def test_a_process_under_the_threshold_is_left_alone(trims: list[int]) -> None:
    assert not IdleTrimmer(above_mb=10**6, idle_seconds=0).trim_if_idle()
    assert trims == []

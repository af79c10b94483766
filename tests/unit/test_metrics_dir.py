"""Which prefork children the worker's metrics endpoint still reports as live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared import metrics_dir

pytestmark = pytest.mark.unit


def _live_files(directory: Path, pid: int) -> list[Path]:
    files = [directory / f"gauge_{mode}_{pid}.db" for mode in ("livesum", "liveall")]
    for path in files:
        path.write_bytes(b"")
    return files


def _zombie() -> subprocess.Popen[bytes]:
    """A child that has died but that its parent (this test) has not reaped."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "child did not die"
        time.sleep(0.01)
    return child


def test_gauges_of_a_running_process_stay(tmp_path: Path) -> None:
    files = _live_files(tmp_path, os.getpid())
    metrics_dir.mark_dead_processes(tmp_path)
    assert all(path.exists() for path in files)


def test_gauges_of_an_exited_process_go_and_its_counters_stay(tmp_path: Path) -> None:
    pid = _exited_pid()
    files = _live_files(tmp_path, pid)
    counter = tmp_path / f"counter_{pid}.db"
    counter.write_bytes(b"")
    metrics_dir.mark_dead_processes(tmp_path)
    assert not any(path.exists() for path in files)
    assert counter.exists()  # what it counted before it died still adds to the node's totals


def test_a_killed_child_not_yet_reaped_is_not_live(tmp_path: Path) -> None:
    child = _zombie()
    try:
        files = _live_files(tmp_path, child.pid)
        metrics_dir.mark_dead_processes(tmp_path)
        assert not any(path.exists() for path in files)
    finally:
        child.wait()


def test_concurrent_scrapes_after_deaths_do_not_fail(tmp_path: Path) -> None:
    # Pids above the kernel's limit (2**22 at most) never belong to a running process.
    files = [path for pid in range(2**22 + 1, 2**22 + 300) for path in _live_files(tmp_path, pid)]
    start = threading.Barrier(8)

    def scrape() -> None:
        start.wait()
        metrics_dir.mark_dead_processes(tmp_path)

    with ThreadPoolExecutor(8) as pool:
        for scraped in [pool.submit(scrape) for _ in range(8)]:
            scraped.result()  # a scrape that raised would answer Prometheus with an error
    assert not any(path.exists() for path in files)


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid

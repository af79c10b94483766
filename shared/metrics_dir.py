"""prometheus_client multiprocess mode: the shared directory's lifecycle."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import disable_created_metrics, multiprocess


def prepare(directory: Path | None) -> None:
    """Call before a module defines its metrics: prometheus_client opens its multiprocess files
    as metrics are defined, so the directory must exist by then."""
    # `_created` series double the exposition and no query here uses them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)


def reset(directory: Path) -> None:
    """Empty the directory at start: samples of a previous run must not be added to this one."""
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink(missing_ok=True)


def mark_dead_processes(directory: Path) -> None:
    """Drop the live gauges of processes that died without a clean shutdown (SIGKILL, OOM)."""
    pids = {_pid(path) for path in directory.glob("gauge_live*_*.db")}
    for pid in pids:
        if pid is not None and not _alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def _pid(path: Path) -> int | None:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

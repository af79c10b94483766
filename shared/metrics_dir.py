"""prometheus_client multiprocess mode: the shared directory's lifecycle."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import disable_created_metrics

_HAS_PROC = Path("/proc/self/stat").exists()


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
    """Drop the live gauges of processes that died without a clean shutdown (SIGKILL, OOM).

    Done here rather than with `multiprocess.mark_process_dead`, which fails when two scrapes
    remove the same file (Prometheus and a person's curl at the moment a child dies).
    """
    for path in directory.glob("gauge_live*_*.db"):
        pid = _pid(path)
        if pid is not None and not _alive(pid):
            path.unlink(missing_ok=True)


def _pid(path: Path) -> int | None:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    """Whether the process still runs; a zombie (dead, not yet reaped by its parent) does not."""
    if not _HAS_PROC:  # macOS: the kernel only says whether the pid exists
        return _exists(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the command name, which is in parentheses and may itself hold any byte.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

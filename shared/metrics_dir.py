"""prometheus_client multiprocess mode: each process group's own directory, and its lifecycle.

One PROMETHEUS_MULTIPROC_DIR may be given to every imgclf process (one `.env` for all of them).
Each group of processes that adds its samples up (an API launcher and its uvicorn processes, a
worker node and its prefork children) therefore keeps its files in a directory of its own below
it, `<role>-<host>-<pid of the group's first process>`: a worker node starting never empties the
API's files, and two nodes on one host never empty each other's.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from prometheus_client import disable_created_metrics

_HAS_PROC = Path("/proc/self/stat").exists()
# Marks a group directory, so that the processes a group starts use it as it is.
_GROUP_MARKER = ".imgclf-metrics-group"


def prepare(directory: Path | None, *, role: str) -> Path | None:
    """This process group's metrics directory under `directory` (None: single-process mode).

    Call before a module defines its metrics: prometheus_client opens its multiprocess files as
    metrics are defined, in the directory PROMETHEUS_MULTIPROC_DIR names, which this sets to
    the group's (inherited by every process the group starts).
    """
    # `_created` series double the exposition and no query here uses them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    if directory is None:
        return None
    group = directory if (directory / _GROUP_MARKER).exists() else _new_group(directory, role)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(group)
    return group


def _new_group(base: Path, role: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace("-", "_")
    for stale in base.glob(f"*-{host}-*"):
        pid = _group_pid(stale)
        if (stale / _GROUP_MARKER).exists() and pid is not None and not process_alive(pid):
            shutil.rmtree(stale, ignore_errors=True)
    group = base / f"{role}-{host}-{os.getpid()}"
    group.mkdir(exist_ok=True)
    reset(group)  # a pid reused after a restart (pid 1 in a container) starts afresh too
    (group / _GROUP_MARKER).write_text(f"{role}\n")
    return group


def reset(directory: Path) -> None:
    """Empty the directory: samples of a previous run must not be added to this one."""
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
        if pid is not None and not process_alive(pid):
            path.unlink(missing_ok=True)


def _pid(path: Path) -> int | None:
    tail = path.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _group_pid(path: Path) -> int | None:
    tail = path.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def process_alive(pid: int) -> bool:
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

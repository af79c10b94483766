from __future__ import annotations

import subprocess
import sys

import pytest

from scripts import run_stack
from shared.settings import Settings
from shared.workers import STALLED_EXIT_CODE

pytestmark = pytest.mark.unit


def test_stack_starts_every_part_with_its_real_entry_point() -> None:
    commands = run_stack._commands(run_stack._parse([]), Settings(_env_file=None))  # type: ignore[call-arg]
    assert set(commands) == {"worker", "webhooks", "api", "ui", "flower"}
    assert commands["worker"][1:6] == ["-m", "celery", "-A", "worker.celery_app", "worker"]
    assert commands["api"][1:3] == ["-m", "api"]
    assert commands["ui"][1:5] == ["-m", "streamlit", "run", "ui/app.py"]
    assert "--conf=worker/flower_config.py" in commands["flower"]
    assert commands["webhooks"][4:7] == ["worker.webhook_app", "worker", "-Q"]


def test_flags_leave_out_ui_and_flower() -> None:
    commands = run_stack._commands(
        run_stack._parse(["--no-ui", "--no-flower", "--workers", "3"]), Settings(_env_file=None)
    )  # type: ignore[call-arg]
    assert set(commands) == {"worker", "webhooks", "api"}
    assert commands["worker"][-1] == "3"


def test_local_flower_without_credentials_runs_in_dev_mode_and_workers_get_a_metrics_dir() -> None:
    assert run_stack._env_for("flower", {})["DEV_MODE"] == "1"
    assert "DEV_MODE" not in run_stack._env_for("flower", {"FLOWER_BASIC_AUTH": "a:b"})
    assert run_stack._env_for("worker", {})["PROMETHEUS_MULTIPROC_DIR"].endswith("worker-metrics")


def test_a_worker_node_that_stopped_as_stalled_is_started_again_and_others_stop_the_stack() -> None:
    """Real processes: a "worker" that exits 75 (a stuck consumer) is replaced; the stack stops,
    with that status, once any part exits otherwise."""
    started: list[str] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        started.append(name)
        code = STALLED_EXIT_CODE if len(started) == 1 else 4
        return subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])

    procs = {"worker": start("worker")}
    assert run_stack._supervise(procs, start) == 4
    assert started == ["worker", "worker"]

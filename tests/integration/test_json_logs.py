"""LOG_FORMAT=json: the API and a worker node write one JSON object per line, and every line
about a job carries its `job_id`. Real processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from scripts.processes import free_port, running, wait_for_http
from tests.processes import RedisServer, service_env, wait_until, worker_command

pytestmark = pytest.mark.integration


def _records(log: Path) -> list[dict]:
    """The log's JSON lines (Celery's start-up banner is printed, not logged)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_every_line_about_a_job_names_it(tmp_path: Path, labrador_bytes: bytes) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    env = service_env(redis.url, LOG_FORMAT="json", LOG_LEVEL="INFO")
    try:
        with (
            running(worker_command(), env=env, log=tmp_path / "worker.log"),
            running(
                [sys.executable, "-m", "api", "--port", str(port)],
                env=env,
                log=tmp_path / "api.log",
            ),  # fmt: skip
        ):
            wait_for_http(f"{api}/health")
            wait_until(lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60,
                       what="worker")  # fmt: skip
            job = httpx.post(f"{api}/api/v1/jobs", params={"wait": 20}, timeout=30,
                             files={"file": ("d.jpg", labrador_bytes, "image/jpeg")}).json()  # fmt: skip
            assert httpx.get(f"{api}/api/v1/jobs/{job['job_id']}").status_code == 200
            wait_until(lambda: job["job_id"] in (tmp_path / "worker.log").read_text(),
                       timeout=10, what="the worker's lines")  # fmt: skip
    finally:
        redis.stop()
    for name in ("worker.log", "api.log"):
        records = _records(tmp_path / name)
        assert records, name
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records), name
        about = [r for r in records if job["job_id"] in json.dumps(r)]
        assert about, f"{name} has no line about the job"
        assert all(r.get("job_id") == job["job_id"] for r in about), [
            r for r in about if r.get("job_id") != job["job_id"]
        ]

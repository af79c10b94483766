"""`/ready` counts a worker node's processes only once the node takes jobs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from scripts.processes import running
from tests.processes import RedisServer, api_server, service_env, wait_until, worker_command

pytestmark = pytest.mark.integration


def test_a_job_sent_as_soon_as_ready_is_taken_at_once(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    """With Celery's default start-up (the other tests skip `mingle` to start faster), a node
    spends about a second looking for neighbour nodes after its processes have loaded the
    model; `/ready` used to count them meanwhile, and the first job waited ~0.9 s in the queue."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    env = service_env(server.url)
    worker = [arg for arg in worker_command() if arg != "--without-mingle"]
    try:
        with (
            api_server(env, tmp_path / "api.log") as base,
            running(worker, env=env, log=tmp_path / "worker.log"),
        ):
            wait_until(
                lambda: httpx.get(f"{base}/ready").status_code == 200, timeout=60, what="worker"
            )
            response = httpx.post(
                f"{base}/api/v1/jobs",
                params={"wait": 20},
                files={"file": ("dog.jpg", labrador_bytes, "image/jpeg")},
            )
            job = response.json()
            assert job["status"] == "succeeded", job
            assert job["result"]["timings"]["queue_wait_ms"] < 500, job["result"]["timings"]
    finally:
        server.stop()

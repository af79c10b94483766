"""A self-hosted service talks to no one its operator did not configure: a worker node, the API
and Flower, with every proxy variable pointed at a trap, open no connection to it while they
start, run jobs and serve pages (onnxruntime's telemetry used to, every few seconds). The UI's
check is in tests/e2e/test_ui.py, where a browser runs its pages."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from scripts.processes import free_port
from tests.processes import (
    RedisServer,
    Trap,
    api_server,
    flower_command,
    running,
    service_env,
    wait_until,
    worker_command,
)

pytestmark = pytest.mark.integration


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_worker_api_and_flower_open_no_outbound_connection(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    trap = Trap()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = {**service_env(redis.url), **trap.proxy_env(), "NO_PROXY": "", "no_proxy": ""}
    env.pop("ORT_DISABLE_TELEMETRY", None)  # whatever the machine sets, imgclf must not need it
    flower_port = free_port()
    flower = f"http://127.0.0.1:{flower_port}"
    try:
        with (
            running(worker_command(), env=env, log=tmp_path / "worker.log"),
            api_server(env, tmp_path / "api.log") as api,
            running(
                flower_command(flower_port),
                env={**env, "DEV_MODE": "1"},
                log=tmp_path / "flower.log",
            ),  # fmt: skip
        ):
            wait_until(lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60,
                       what="worker")  # fmt: skip
            for _ in range(3):
                answer = httpx.post(f"{api}/api/v1/jobs", params={"wait": 20},
                                    files={"file": ("d.jpg", labrador_bytes)}, timeout=30)  # fmt: skip
                assert answer.status_code == 200
            wait_until(lambda: _answers(f"{flower}/healthcheck"), timeout=60, what="Flower")
            for page in ("/", "/workers", "/tasks", "/broker", "/metrics"):
                assert httpx.get(f"{flower}{page}", timeout=30).status_code == 200, page
            time.sleep(10)  # onnxruntime's telemetry came within seconds of loading the model
    finally:
        redis.stop()
        trap.close()
    assert trap.caught == []

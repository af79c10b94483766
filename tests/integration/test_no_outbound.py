"""A self-hosted service talks to no one its operator did not configure: a worker node and the
API, with every proxy variable pointed at a trap, open no connection to it while they start and
run jobs (onnxruntime's telemetry used to, every few seconds)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import (
    RedisServer,
    api_server,
    running,
    service_env,
    wait_until,
    worker_command,
)

pytestmark = pytest.mark.integration


class Trap:
    """A listening socket that records the first bytes of every connection made to it."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.caught: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.caught.append(connection.recv(200))
                except OSError:
                    self.caught.append(b"")

    def close(self) -> None:
        self._server.close()


def test_worker_and_api_open_no_outbound_connection(tmp_path: Path, labrador_bytes: bytes) -> None:
    trap = Trap()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    proxies = {name: trap.url for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY",
                                            "https_proxy", "http_proxy", "all_proxy")}  # fmt: skip
    env = {**service_env(redis.url), **proxies, "NO_PROXY": "", "no_proxy": ""}
    env.pop("ORT_DISABLE_TELEMETRY", None)  # whatever the machine sets, imgclf must not need it
    try:
        with (
            running(worker_command(), env=env, log=tmp_path / "worker.log"),
            api_server(env, tmp_path / "api.log") as api,
        ):
            wait_until(lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60,
                       what="worker")  # fmt: skip
            for _ in range(3):
                answer = httpx.post(f"{api}/api/v1/jobs", params={"wait": 20},
                                    files={"file": ("d.jpg", labrador_bytes)}, timeout=30)  # fmt: skip
                assert answer.status_code == 200
            time.sleep(10)  # onnxruntime's telemetry came within seconds of loading the model
    finally:
        redis.stop()
        trap.close()
    assert trap.caught == []

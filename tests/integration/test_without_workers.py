"""Behaviour when no worker consumes the queue, jobs expire, or Redis goes away."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import RedisServer, api_server, service_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def idle_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RedisServer]]:
    """An API on its own Redis with no worker at all, short TTLs and a short predict timeout."""
    tmp = tmp_path_factory.mktemp("idle")
    server = RedisServer(tmp / "redis")
    server.start()
    env = service_env(server.url, JOB_TTL_SECONDS="3", PREDICT_TIMEOUT_SECONDS="1")
    with api_server(env, tmp / "api.log") as base:
        yield base, server
    server.stop()


def _submit(base: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{base}/api/v1/jobs", files={"file": ("d.jpg", data, "image/jpeg")})


def test_cancel_a_queued_job_then_conflict(
    idle_api: tuple[str, RedisServer], labrador_bytes: bytes
) -> None:
    base, _ = idle_api
    job_id = _submit(base, labrador_bytes).json()["job_id"]
    canceled = httpx.delete(f"{base}/api/v1/jobs/{job_id}")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert httpx.get(f"{base}/api/v1/jobs/{job_id}").json()["status"] == "canceled"
    assert httpx.delete(f"{base}/api/v1/jobs/{job_id}").status_code == 409


def test_job_expires_after_its_ttl(
    idle_api: tuple[str, RedisServer], labrador_bytes: bytes
) -> None:
    base, _ = idle_api
    job_id = _submit(base, labrador_bytes).json()["job_id"]
    assert httpx.get(f"{base}/api/v1/jobs/{job_id}").status_code == 200
    time.sleep(3.5)
    assert httpx.get(f"{base}/api/v1/jobs/{job_id}").status_code == 404


def test_submit_with_wait_without_worker_answers_202_queued_after_wait(
    idle_api: tuple[str, RedisServer], labrador_bytes: bytes
) -> None:
    base, _ = idle_api
    started = time.monotonic()
    response = httpx.post(
        f"{base}/api/v1/jobs",
        files={"file": ("d.jpg", labrador_bytes, "image/jpeg")},
        params={"wait": 1},
    )
    assert 1 <= time.monotonic() - started < 5
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    assert response.headers["location"].endswith(response.json()["job_id"])


def test_long_poll_without_worker_returns_queued_after_wait(
    idle_api: tuple[str, RedisServer], labrador_bytes: bytes
) -> None:
    base, _ = idle_api
    job_id = _submit(base, labrador_bytes).json()["job_id"]
    started = time.monotonic()
    job = httpx.get(f"{base}/api/v1/jobs/{job_id}", params={"wait": 1.5}).json()
    assert job["status"] == "queued"
    assert 1.4 <= time.monotonic() - started < 5


def test_predict_without_worker_is_504_with_clear_message(
    idle_api: tuple[str, RedisServer], labrador_bytes: bytes
) -> None:
    base, _ = idle_api
    response = httpx.post(
        f"{base}/api/v1/predict", files={"file": ("d.jpg", labrador_bytes, "image/jpeg")}
    )
    assert response.status_code == 504
    assert "No worker answered" in response.json()["message"]


def test_ready_is_503_without_workers(idle_api: tuple[str, RedisServer]) -> None:
    base, _ = idle_api
    response = httpx.get(f"{base}/ready")
    assert response.status_code == 503
    assert "no worker" in response.json()["message"]


def test_redis_outage_gives_503_and_the_api_recovers_by_itself(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        with api_server(service_env(server.url), tmp_path / "api.log") as base:
            assert _submit(base, labrador_bytes).status_code == 202
            server.stop()
            down = _submit(base, labrador_bytes)
            assert down.status_code == 503
            assert down.json()["code"] == "store_unavailable"
            assert int(down.headers["retry-after"]) >= 1
            ready = httpx.get(f"{base}/ready")
            assert ready.status_code == 503
            assert "Redis" in ready.json()["message"]
            assert httpx.get(f"{base}/health").status_code == 200
            server.start()
            again = _submit(base, labrador_bytes)
            assert again.status_code == 202
            assert httpx.get(f"{base}/api/v1/jobs/{again.json()['job_id']}").status_code == 200
    finally:
        server.stop()

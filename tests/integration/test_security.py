"""API keys, Redis authentication, and a worker that executes nothing but JSON messages."""

from __future__ import annotations

import http.client
import json
import pickle
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from kombu import Connection

from tests.conftest import Stack
from tests.integration.jobs_helpers import wait_all_terminal
from tests.processes import RedisServer, api_server, running, service_env, worker_command

pytestmark = pytest.mark.integration


def test_api_keys_guard_every_route_but_health(tmp_path: Path, labrador_bytes: bytes) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        with api_server(
            service_env(redis.url, API_KEYS="k-one, k-two"), tmp_path / "api.log"
        ) as api:
            assert httpx.get(f"{api}/health").status_code == 200
            for method, path in [
                ("POST", "/api/v1/jobs"),
                ("GET", f"/api/v1/jobs/{uuid.uuid4()}"),
                ("GET", "/api/v1/model-info"),
                ("GET", "/api/v1/queue"),
                ("GET", "/metrics"),
                ("POST", "/api/v1/predict"),
            ]:
                response = httpx.request(method, f"{api}{path}")
                assert response.status_code == 401, path
                assert response.json()["code"] == "unauthorized"
            # Probes need no key: they learn whether the API is ready, and nothing more.
            probe = httpx.get(f"{api}/ready")
            assert (probe.status_code, probe.json()) == (503, {"status": "not ready"})
            keyed = httpx.get(f"{api}/ready", headers={"X-API-Key": "k-one"}).json()
            assert keyed["message"] == "Not ready: no worker with a model loaded is alive"
            wrong = httpx.get(f"{api}/api/v1/queue", headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401
            submitted = httpx.post(
                f"{api}/api/v1/jobs",
                headers={"X-API-Key": "k-two"},
                files={"file": ("d.jpg", labrador_bytes)},
            )
            assert submitted.status_code == 202
            job = httpx.get(
                f"{api}/api/v1/jobs/{submitted.json()['job_id']}",
                headers={"Authorization": "Bearer k-one"},
            )
            assert job.status_code == 200
    finally:
        redis.stop()


def test_password_protected_redis_works_through_the_url(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    redis = RedisServer(tmp_path / "redis", password="s3cret-pw")
    redis.start()
    env = service_env(redis.url)
    try:
        with (
            running(worker_command(), env=env, log=tmp_path / "worker.log"),
            api_server(env, tmp_path / "api.log") as api,
        ):
            job_id = httpx.post(
                f"{api}/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)}
            ).json()["job_id"]
            jobs = wait_all_terminal(api, [job_id], timeout=60)
            assert jobs[job_id]["result"]["predictions"][0]["class_id"] == 208
            assert "s3cret-pw" not in httpx.get(f"{api}/api/v1/model-info").text
    finally:
        redis.stop()


def test_worker_refuses_pickle_messages(
    stack: Stack, api: httpx.Client, labrador_bytes: bytes
) -> None:
    """A pickle payload would be code execution for anyone who can write to Redis."""
    # A job that exists but whose only message is a pickled one: it must never run.
    queue_url = stack.redis.url
    job = api.post("/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)}).json()
    wait_all_terminal(stack.api_url, [job["job_id"]], timeout=30)  # the genuine message runs
    client = stack.redis.client()
    client.hset(f"imgclf:job:{job['job_id']}", mapping={"status": "queued"})
    client.hdel(f"imgclf:job:{job['job_id']}", "result")
    with Connection(queue_url) as connection:
        producer = connection.Producer(serializer="pickle")
        producer.publish(
            pickle.dumps(([job["job_id"]], {}, {})),
            routing_key="imgclf",
            exchange="",
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={"task": "imgclf.classify", "id": str(uuid.uuid4()), "lang": "py"},
        )
    time.sleep(3)
    assert client.hget(f"imgclf:job:{job['job_id']}", "status") == b"queued"
    log = (stack.logs / "worker.log").read_text()
    assert "untrusted content" in log or "ContentDisallowed" in log


def test_keys_are_checked_before_the_body_and_compared_as_bytes(tmp_path: Path) -> None:
    """An anonymous 600 MB batch is refused from its headers alone; a non-ASCII key is a 401
    (it used to be a 500), and a non-ASCII key that is configured works."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        env = service_env(redis.url, API_KEYS="plain, clé-secrète")
        with api_server(env, tmp_path / "api.log") as api:
            url = urlsplit(api)
            with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
                sock.sendall(
                    b"POST /api/v1/jobs/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 629145600\r\n"
                    b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
                )
                # No byte of the body was sent; the answer's head and body may come in two
                # segments, so it is read as a whole response.
                reply = http.client.HTTPResponse(sock)
                reply.begin()
                assert reply.status == 401
                assert json.loads(reply.read())["code"] == "unauthorized"
            for key in ("é".encode(), "clé-secrète".encode("latin-1"), b"\xff\xfe"):
                answer = httpx.get(f"{api}/api/v1/queue", headers={"X-API-Key": key})
                assert answer.status_code == 401, key
            good = httpx.get(f"{api}/api/v1/queue", headers={"X-API-Key": "clé-secrète".encode()})
            assert good.status_code == 200
            for docs in ("/docs", "/redoc", "/openapi.json"):
                assert httpx.get(f"{api}{docs}").status_code == 401, docs
            assert httpx.get(f"{api}/openapi.json", headers={"X-API-Key": "plain"}).is_success
        assert "Traceback" not in (tmp_path / "api.log").read_text()
        with api_server({**env, "API_DOCS_OPEN": "1"}, tmp_path / "open-api.log") as api:
            assert httpx.get(f"{api}/openapi.json").status_code == 200
            assert httpx.get(f"{api}/api/v1/queue").status_code == 401
    finally:
        redis.stop()

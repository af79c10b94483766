"""`rediss://` verifies Redis's certificate in every process (API, worker, the broker
connection), against a throwaway CA the test makes; opting out is explicit and logged."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.processes import api_server, free_port, running, service_env, wait_until, worker_command

pytestmark = pytest.mark.integration


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(directory: Path, name: str) -> Path:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)  # fmt: skip
    return directory / f"{name}.pem"


@dataclass(frozen=True)
class TlsRedis:
    url: str
    ca: Path
    other_ca: Path


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: apt-get install openssl")
    ca, other = _ca(tmp_path, "ca"), _ca(tmp_path, "other")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=tmp_path)  # fmt: skip
    (tmp_path / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san.cnf", "-out", "server.pem",
             cwd=tmp_path)  # fmt: skip
    port = free_port()
    command = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
               "--tls-cert-file", str(tmp_path / "server.pem"),
               "--tls-key-file", str(tmp_path / "server.key"),
               "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--save", "",
               "--dir", str(tmp_path)]  # fmt: skip
    with running(command, env=dict(os.environ), log=tmp_path / "redis.log"):
        url = f"rediss://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url, ssl_ca_certs=str(ca), socket_connect_timeout=1)
        wait_until(lambda: bool(client.ping()), timeout=10, what="TLS redis-server")
        yield TlsRedis(url, ca, other)


def test_jobs_run_over_verified_tls(
    tls_redis: TlsRedis, tmp_path: Path, labrador_bytes: bytes
) -> None:
    env = service_env(tls_redis.url, REDIS_TLS_CA_FILE=str(tls_redis.ca))
    with (
        running(worker_command(), env=env, log=tmp_path / "worker.log"),
        api_server(env, tmp_path / "api.log") as api,
    ):
        wait_until(lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60, what="worker")
        response = httpx.post(f"{api}/api/v1/jobs", params={"wait": 20},
                              files={"file": ("d.jpg", labrador_bytes)}, timeout=30)  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["result"]["predictions"][0]["class_id"] == 208


def test_a_redis_whose_certificate_is_not_trusted_gets_nothing(
    tls_redis: TlsRedis, tmp_path: Path, labrador_bytes: bytes
) -> None:
    """Signed by a CA the processes do not trust: as a stranger answering at REDIS_URL would be."""
    env = service_env(tls_redis.url, REDIS_TLS_CA_FILE=str(tls_redis.other_ca))
    log = tmp_path / "worker.log"
    with running(worker_command(), env=env, log=log), api_server(env, tmp_path / "api.log") as api:
        response = httpx.post(f"{api}/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)})
        assert response.status_code == 503
        assert response.json()["code"] == "store_unavailable"
        assert httpx.get(f"{api}/ready").status_code == 503
        wait_until(lambda: "certificate verify failed" in log.read_text(), timeout=30,
                   what="the worker's refusal")  # fmt: skip


def test_opting_out_of_verification_works_and_says_so(
    tls_redis: TlsRedis, tmp_path: Path, labrador_bytes: bytes
) -> None:
    env = service_env(tls_redis.url, REDIS_TLS_CA_FILE=str(tls_redis.other_ca),
                      REDIS_TLS_INSECURE="1")  # fmt: skip
    with api_server(env, tmp_path / "api.log") as api:
        response = httpx.post(f"{api}/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)})
        assert response.status_code == 202
        time.sleep(0.2)
    assert "certificate is not verified" in (tmp_path / "api.log").read_text()

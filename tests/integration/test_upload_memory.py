"""Uploads wait in memory within UPLOAD_MEMORY_BYTES and on disk beyond it, through the real
form parser of a running API: nothing is refused or altered for it, and many large uploads at
once do not grow the API by their size."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from scripts.bench.http_wire import multipart_post
from scripts.bench.services import rss_mb
from scripts.processes import free_port, running, wait_for_http
from shared.jobs import image_key
from tests.images import encode
from tests.processes import RedisServer, api_command, metric_samples, service_env

pytestmark = pytest.mark.integration

BUDGET = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def small_budget_api(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen[bytes], RedisServer]]:
    """An API with a 2 MiB upload memory budget and no worker: jobs stay queued with their
    images in Redis, where the test can read back exactly what was stored."""
    tmp = tmp_path_factory.mktemp("upload-memory")
    server = RedisServer(tmp / "redis")
    server.start()
    port = free_port()
    env = service_env(server.url, UPLOAD_MEMORY_BYTES=str(BUDGET))
    with running(api_command(port), env=env, log=tmp / "api.log") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", timeout=30)
        yield base, proc, server
    server.stop()


def _noise_jpeg(width: int, height: int, seed: int) -> bytes:
    """A photo-sized JPEG that compresses badly, so its file is large."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def _metric(base: str, name: str) -> float:
    values = [sample.value for sample in metric_samples(base) if sample.name == name]
    assert values, f"{name} is not exported"
    return sum(values)


def _stored_image(server: RedisServer, job_id: str) -> bytes | None:
    value: bytes | None = server.client().get(image_key(job_id))
    return value


def test_files_beyond_the_budget_go_to_disk_and_are_stored_intact(
    small_budget_api: tuple[str, subprocess.Popen[bytes], RedisServer], labrador_bytes: bytes
) -> None:
    base, _, server = small_budget_api
    spilled = "imgclf_api_uploads_spilled_to_disk_total"
    large = [_noise_jpeg(1600, 1200, seed) for seed in range(3)]
    assert all(len(data) > BUDGET / 2 for data in large)  # two of them cannot share the budget

    before = _metric(base, spilled)
    small = httpx.post(f"{base}/api/v1/jobs", files={"file": ("dog.jpg", labrador_bytes)})
    assert small.status_code == 202
    assert _metric(base, spilled) == before  # a small file stays in memory

    batch = httpx.post(
        f"{base}/api/v1/jobs/batch",
        files=[("files", (f"noise{i}.jpg", data, "image/jpeg")) for i, data in enumerate(large)],
    )
    assert batch.status_code == 202, batch.text
    assert _metric(base, spilled) >= before + 2
    jobs = batch.json()["jobs"]
    assert [_stored_image(server, job["job_id"]) for job in jobs] == large
    assert _stored_image(server, small.json()["job_id"]) == labrador_bytes


def test_refused_and_cut_off_uploads_give_their_memory_back(
    small_budget_api: tuple[str, subprocess.Popen[bytes], RedisServer],
) -> None:
    base, _, _ = small_budget_api
    garbage = httpx.post(f"{base}/api/v1/jobs", files={"file": ("x.jpg", b"\xff" * 500_000)})
    assert garbage.status_code in (400, 415)
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # a client that gives up midway
        sock.sendall(multipart_post("/api/v1/jobs", _noise_jpeg(800, 600, 7))[:300_000])
    accepted = httpx.post(
        f"{base}/api/v1/jobs", files={"file": ("n.jpg", _noise_jpeg(900, 700, 8))}
    )
    assert accepted.status_code == 202
    # The budget is whole again: otherwise every later upload would be sent to disk.
    deadline = time.monotonic() + 5
    while _metric(base, "imgclf_api_upload_memory_bytes") != 0:
        assert time.monotonic() < deadline, "upload memory never returned to 0"
        time.sleep(0.1)


def test_many_large_uploads_at_once_do_not_grow_the_api_by_their_size(
    small_budget_api: tuple[str, subprocess.Popen[bytes], RedisServer],
) -> None:
    """16 clients trickle 4 MB each (64 MB in flight); all of it used to sit in the API's
    memory, twice. Now at most the budget and one request's files are."""
    base, proc, _ = small_budget_api
    request = multipart_post("/api/v1/jobs", _noise_jpeg(2400, 1800, 11))
    host, port = base.removeprefix("http://").split(":")
    start_rss = _rss_mb(proc.pid)
    answers: list[bytes] = []

    def slow_client() -> None:
        with socket.create_connection((host, int(port))) as sock:
            for offset in range(0, len(request), 256 * 1024):
                sock.sendall(request[offset : offset + 256 * 1024])
                time.sleep(0.1)
            answers.append(sock.recv(64).split(b"\r\n")[0])

    peak = _peak_rss_while(proc.pid, [threading.Thread(target=slow_client) for _ in range(16)])
    assert answers == [b"HTTP/1.1 202 Accepted"] * 16
    in_flight_mb = 16 * len(request) / 2**20
    assert peak - start_rss < in_flight_mb / 3, (start_rss, peak, in_flight_mb)


def test_the_api_checks_uploads_without_loading_numpy(
    small_budget_api: tuple[str, subprocess.Popen[bytes], RedisServer], labrador_bytes: bytes
) -> None:
    """Decoding and preprocessing, which need numpy, belong to the worker; numpy would add
    ~11 MB to every API process for nothing."""
    base, proc, _ = small_budget_api
    answer = httpx.post(f"{base}/api/v1/jobs", files={"file": ("dog.jpg", labrador_bytes)})
    assert answer.status_code == 202
    for path in (answer.headers["Location"], "/ready", "/metrics", "/api/v1/queue",
                 "/api/v1/model-info"):  # fmt: skip
        assert httpx.get(f"{base}{path}").status_code != 500  # /ready: 503, no worker here
    with open(f"/proc/{proc.pid}/maps") as maps:
        loaded = {line.split()[-1] for line in maps if "numpy" in line}
    assert not loaded


def _peak_rss_while(pid: int, threads: list[threading.Thread]) -> float:
    peak = 0.0
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, _rss_mb(pid))
        time.sleep(0.005)
    return max(peak, _rss_mb(pid))


def _rss_mb(pid: int) -> float:
    return rss_mb(pid)["rss_mb"]


def test_bodies_that_stop_arriving_are_cut_with_408_and_give_their_memory_back(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    """Two uploads stall after 3 MiB each: they used to hold the budget for good, so that every
    later upload waited on the disk path."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    port = free_port()
    env = service_env(server.url, UPLOAD_MEMORY_BYTES=str(8 * 2**20), UPLOAD_TIMEOUT_SECONDS="2")
    try:
        with running(api_command(port), env=env, log=tmp_path / "api.log"):
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/health", timeout=30)
            request = multipart_post("/api/v1/jobs", _noise_jpeg(2400, 1800, 3))
            stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
            for sock in stalled:
                sock.sendall(request[: 3 * 2**20])
            replies = [sock.recv(256).split(b"\r\n")[0] for sock in stalled]
            assert replies == [b"HTTP/1.1 408 Request Timeout"] * 2
            for sock in stalled:
                sock.close()
            assert _metric(base, "imgclf_api_upload_memory_bytes") == 0
            accepted = httpx.post(f"{base}/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)})
            assert accepted.status_code == 202
    finally:
        server.stop()

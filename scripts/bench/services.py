"""Start the real services on free loopback ports for a benchmark run, and measure their memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.settings import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    api_url: str
    api_pid: int
    worker_pid: int


@contextmanager
def process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def wait_for(url: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@contextmanager
def pipeline(*, workers: int, logs: Path) -> Iterator[Stack]:
    """redis-server, one Celery worker node with `workers` processes, and the API."""
    redis_port, api_port = free_port(), free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data:
        stack.enter_context(
            process(
                [
                    "redis-server",
                    "--port",
                    str(redis_port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    data,
                ],
                dict(os.environ),
                logs / "redis.log",
            )
        )
        env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "WORKER_CONCURRENCY": str(workers),
            "WORKER_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": str(Path(data) / "metrics"),
            "LOG_LEVEL": "WARNING",
            "MAX_QUEUE_LENGTH": "100000",
        }
        worker = stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "worker.celery_app",
                    "worker",
                    "--loglevel",
                    "WARNING",
                    "--without-gossip",
                    "--without-mingle",
                ],
                env,
                logs / f"worker-{workers}.log",
            )
        )
        api_env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        api = stack.enter_context(
            process(
                [sys.executable, "-m", "api", "--port", str(api_port)], api_env, logs / "api.log"
            )
        )
        url = f"http://127.0.0.1:{api_port}"
        wait_for(f"{url}/health")
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/ready").json().get("workers_online", 0) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not come up")
            time.sleep(0.2)
        yield Stack(url, api.pid, worker.pid)


@contextmanager
def seed_design(*, logs: Path) -> Iterator[str]:
    """The seed's approach: inference inline in the FastAPI handler, one uvicorn process."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "scripts.bench.seed_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with process(command, dict(os.environ), logs / "seed.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/health")
        yield url


def rss_mb(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []

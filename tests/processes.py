"""Real processes for tests: a throwaway redis-server, Celery workers, the API."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from scripts.processes import free_port, running, wait_for_http
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models"
SHARED_IMAGES = ROOT.parent / "shared" / "images"


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout} s")


class RedisServer:
    """A private redis-server on a free port; can be stopped and started again on that port."""

    def __init__(
        self,
        workdir: Path,
        *,
        appendonly: bool = False,
        password: str = "",
        extra: tuple[str, ...] = (),
    ) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server")
        self.port = free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.appendonly = appendonly
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.workdir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        wait_until(lambda: bool(client.ping()), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


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

    def proxy_env(self) -> dict[str, str]:
        """Every proxy variable, in both cases, pointed at the trap."""
        names = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
        return dict.fromkeys(names, self.url)

    def close(self) -> None:
        self._server.close()


def service_env(redis_url: str, **overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "MODELS_DIR": str(ROOT / "models"),
        "PYTHONUNBUFFERED": "1",
        # Each worker its own metrics port: the default 9808 may be taken by another test's node.
        "WORKER_METRICS_PORT": str(free_port()),
    }
    env.update(overrides)
    return env


def worker_command(*, concurrency: int = 2, hostname: str = "w1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{hostname}@%h",
        "--without-gossip",
        "--without-mingle",
    ]


def webhook_node_command(*, hostname: str = "webhooks", concurrency: int = 4) -> list[str]:
    """A webhook node (`worker.webhook_app`, threads) consuming the default webhook queue."""
    return [sys.executable, "-m", "celery", "-A", "worker.webhook_app", "worker", "-Q",
            Settings().webhook_queue, "--pool", "threads", "--concurrency", str(concurrency),
            "--hostname", f"{hostname}@%h", "--without-gossip", "--without-mingle"]  # fmt: skip


def flower_command(port: int) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "flower",
            "--conf=worker/flower_config.py", f"--port={port}", "--address=127.0.0.1"]  # fmt: skip


def flower_lists(flower: str, queues: Sequence[str]) -> bool:
    """Whether Flower's broker page lists these queues (it reads them from Redis)."""
    try:
        page = httpx.get(f"{flower}/broker", timeout=5)
    except httpx.TransportError:
        return False
    return page.status_code == 200 and all(f">{name}<" in page.text for name in queues)


def api_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with running(api_command(port), env=env, log=log):
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", timeout=30)
        yield base


@contextmanager
def supervised(command: list[str], *, env: dict[str, str], log: Path) -> Iterator[list[int]]:
    """`command`, started again whenever it exits, as Docker's restart policy or Kubernetes
    would; yields the exit statuses of the runs that ended (the restarts)."""
    exits: list[int] = []
    stop = threading.Event()

    def keep_running() -> None:
        run = 0
        while not stop.is_set():
            with running(command, env=env, log=log.with_suffix(f".{run}.log")) as proc:
                while proc.poll() is None and not stop.wait(0.2):
                    pass
                if proc.poll() is not None and not stop.is_set():
                    exits.append(proc.returncode)
            run += 1

    thread = threading.Thread(target=keep_running, daemon=True)
    thread.start()
    try:
        yield exits
    finally:
        stop.set()
        thread.join(timeout=30)


def children(pid: int) -> list[int]:
    """Direct child processes of `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may contain spaces; the parent pid follows its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def metric_samples(base_url: str) -> list[Sample]:
    """Every sample a `/metrics` endpoint exposes, parsed."""
    text = httpx.get(f"{base_url}/metrics").text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]

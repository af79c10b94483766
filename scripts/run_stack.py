"""Run the whole imgclf stack locally: Redis, Celery workers, the API, the UI and Flower.

    uv run imgclf-stack [--workers N] [--no-ui] [--no-flower] [--model-from DIR]

Uses the Redis at REDIS_URL when it answers; otherwise starts a private `redis-server` (data
under `.run/`). Installs the model first when it is missing. Ctrl-C stops everything; if any
process dies, the others are stopped too and the exit status says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis

from scripts import download_model
from shared.errors import ModelError
from shared.model_cards import read_cards
from shared.settings import PROJECT_ROOT, Settings, get_settings
from shared.workers import STALLED_EXIT_CODE

RUN_DIR = PROJECT_ROOT / ".run"
REDIS_START_SECONDS = 10.0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    settings = get_settings()
    if _ensure_model(args.model_from) != 0:
        return 1
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        redis_url = _ensure_redis(settings, procs)
        env = {**os.environ, "REDIS_URL": redis_url, "API_URL": settings.api_url}
        commands = _commands(args, settings)

        def start(name: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen(commands[name], cwd=PROJECT_ROOT, env=_env_for(name, env))

        for name in commands:
            procs[name] = start(name)
        print(_banner(args, settings, redis_url), flush=True)
        return _supervise(procs, start)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        _stop_all(procs)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="imgclf-stack",
        description="Run Redis, Celery workers, the API, the Streamlit UI and Flower locally.",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default WORKER_CONCURRENCY)"
    )
    parser.add_argument("--no-ui", action="store_true", help="do not start the Streamlit UI")
    parser.add_argument("--no-flower", action="store_true", help="do not start Flower")
    parser.add_argument(
        "--model-from",
        type=Path,
        default=None,
        help="install a missing model from this folder instead of downloading it",
    )
    return parser.parse_args(argv)


def _ensure_model(source: Path | None) -> int:
    settings = get_settings()
    try:
        models = read_cards(settings.models_dir, settings.worker_model_names())
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if all(m.model_path.is_file() and m.labels_path.is_file() for m in models.values()):
        return 0
    print("model files missing: installing them first", flush=True)
    return download_model.main(["--from", str(source)] if source else [])


def _ensure_redis(settings: Settings, procs: dict[str, subprocess.Popen[bytes]]) -> str:
    url = settings.redis_url
    if settings.sentinel_addresses():
        return url  # a Sentinel-managed Redis is run by its operator, never started here
    if _redis_answers(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"Redis at {url} does not answer, and it is not on this machine")
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError(
            "redis-server is not installed. Install it (Debian/Ubuntu: `sudo apt-get install "
            "redis-server`; macOS: `brew install redis`) or set REDIS_URL to a running Redis."
        )
    port = parts.port or 6379
    RUN_DIR.mkdir(exist_ok=True)
    procs["redis"] = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(RUN_DIR),
            "--appendonly",
            "yes",
            "--appendfsync",
            settings.redis_appendfsync,
            "--maxmemory",
            settings.redis_maxmemory,
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
        ],
    )
    deadline = time.monotonic() + REDIS_START_SECONDS
    while not _redis_answers(url):
        if procs["redis"].poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.1)
    return url


def _redis_shown(settings: Settings, redis_url: str) -> str:
    if settings.sentinel_addresses():
        return f"master {settings.redis_sentinel_master!r} of sentinels {settings.redis_sentinels}"
    return redis_url


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _commands(args: argparse.Namespace, settings: Settings) -> dict[str, list[str]]:
    py = sys.executable
    api = urlsplit(settings.api_url)
    concurrency = str(args.workers or settings.worker_concurrency)
    commands = {
        "worker": [py, "-m", "celery", "-A", "worker.celery_app", "worker",
                   "--loglevel", "INFO", "--concurrency", concurrency],
        "api": [py, "-m", "api", "--host", api.hostname or "127.0.0.1",
                "--port", str(api.port or settings.api_port)],
    }  # fmt: skip
    # Webhook deliveries: network waits, in threads, apart from the classify processes.
    commands["webhooks"] = [py, "-m", "celery", "-A", "worker.webhook_app", "worker",
                            "-Q", settings.webhook_queue, "--pool", "threads",
                            "--concurrency", "8", "--hostname", "webhooks@%h"]  # fmt: skip
    if not args.no_ui:
        commands["ui"] = [py, "-m", "streamlit", "run", "ui/app.py",
                          "--server.port", str(settings.ui_port), "--server.headless", "true",
                          "--browser.gatherUsageStats", "false",
                          "--client.toolbarMode", "minimal"]  # fmt: skip
    if not args.no_flower:
        commands["flower"] = [py, "-m", "celery", "-A", "worker.celery_app", "flower",
                              "--conf=worker/flower_config.py",
                              f"--port={settings.flower_port}", "--address=127.0.0.1"]  # fmt: skip
    return commands


def _env_for(name: str, base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    if name == "worker":
        # Set before the worker starts, so every prefork child writes its samples there.
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(RUN_DIR / "worker-metrics"))
    if name == "flower" and "FLOWER_BASIC_AUTH" not in env:
        env["DEV_MODE"] = "1"  # a local stack on loopback; Flower says loudly that it is open
    return env


def _banner(args: argparse.Namespace, settings: Settings, redis_url: str) -> str:
    lines = [
        "imgclf is starting:",
        f"  API     {settings.api_url}/docs",
        f"  Redis   {_redis_shown(settings, redis_url)}",
    ]
    if not args.no_ui:
        lines.append(f"  UI      http://127.0.0.1:{settings.ui_port}")
    if not args.no_flower:
        lines.append(f"  Flower  http://127.0.0.1:{settings.flower_port}")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def _supervise(
    procs: dict[str, subprocess.Popen[bytes]], start: Callable[[str], subprocess.Popen[bytes]]
) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    while True:
        for name, proc in procs.items():
            code = proc.poll()
            if code == STALLED_EXIT_CODE and name == "worker":
                print("the worker node stalled and stopped; starting it again", file=sys.stderr)
                procs[name] = start(name)
            elif code is not None:
                print(f"{name} exited with status {code}; stopping the stack", file=sys.stderr)
                return code or 1
        time.sleep(0.5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    # A second Ctrl-C must not abandon children half-stopped; stragglers are killed after 15 s.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Redis last, so workers and the API can finish talking to it.
    for name in sorted(procs, key=lambda n: n == "redis"):
        if procs[name].poll() is None:
            procs[name].send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())

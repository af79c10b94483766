"""Fixtures that start real services: redis-server, Celery workers and the API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api.main import create_app
from shared.settings import Settings
from tests.models import SUPERCLASS, models_dir
from tests.processes import (
    SHARED_IMAGES,
    RedisServer,
    api_server,
    running,
    service_env,
    wait_until,
    worker_command,
)


@dataclass(frozen=True)
class Stack:
    """A running Redis + worker + API, and where to reach them."""

    api_url: str
    redis: RedisServer
    logs: Path


@pytest.fixture(scope="session")
def labrador_bytes() -> bytes:
    return (SHARED_IMAGES / "labrador.jpg").read_bytes()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's stack serves two models, SqueezeNet the default (`tests.models`): every
    test of it runs on a worker that holds both. (The in-process `api` knows SqueezeNet alone.)"""
    logs = tmp_path_factory.mktemp("logs")
    models = models_dir(tmp_path_factory.mktemp("models"))
    env = service_env(redis_server.url, MODELS_DIR=str(models), MODELS=f"squeezenet,{SUPERCLASS}")
    with (
        running(worker_command(), env=env, log=logs / "worker.log"),
        api_server(env, logs / "api.log") as base,
    ):
        wait_until(lambda: httpx.get(f"{base}/ready").status_code == 200, timeout=60, what="worker")
        yield Stack(base, redis_server, logs)


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """The API app in this process, through an httpx client over ASGI (no server, no sockets),
    with the stack's real Redis and worker: the tier for route behaviour. Tests of what needs a
    server process (raw sockets, slow bodies, signals) use `stack.api_url` instead."""
    app = create_app(Settings(redis_url=stack.redis.url))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client

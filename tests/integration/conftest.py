"""Fixtures of the integration tier (the session's stack is in `tests/conftest.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.rig import FAST, Rig
from tests.processes import RedisServer, api_server, service_env


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    redis = RedisServer(tmp_path / "redis", appendonly=True)
    redis.start()
    env = service_env(redis.url, **FAST)
    with ExitStack() as stack:
        api = stack.enter_context(api_server(env, tmp_path / "api.log"))
        yield Rig(redis, api, env, tmp_path, stack)
    redis.stop()

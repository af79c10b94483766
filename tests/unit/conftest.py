"""The unit tier's job store: a fake Redis per test (fakeredis, Lua included)."""

from __future__ import annotations

import fakeredis
import pytest

from shared.jobs import JobStore


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(client: fakeredis.FakeRedis) -> JobStore:
    return JobStore(client, ttl_seconds=60)

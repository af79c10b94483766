"""Redis connections with the timeouts every imgclf process uses."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shared.errors import StoreUnavailableError

P = ParamSpec("P")
T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 15


def connect(url: str) -> redis.Redis:
    """A pooled, blocking client that fails fast when Redis is down, and reconnects after."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=HEALTH_CHECK_SECONDS,
    )


def connect_async(url: str) -> redis.asyncio.Redis:
    """The asyncio twin of `connect`, for code that lives on an event loop.

    A pooled connection that Redis closed (a restart) fails on first use, where the blocking pool
    replaces it when checked out; one retry on a fresh connection gives the same behaviour.
    """
    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=HEALTH_CHECK_SECONDS,
        # Not on timeouts: a transaction whose answer timed out may have run.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )


@contextlib.contextmanager
def unavailable_as_store_error() -> Iterator[None]:
    """Turn Redis connection failures into `StoreUnavailableError` (503 at the API)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailableError("The job store (Redis) is unavailable; retry shortly") from exc


def store_errors(func: Callable[P, T]) -> Callable[P, T]:
    """`unavailable_as_store_error` around every call of `func`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with unavailable_as_store_error():
            return func(*args, **kwargs)

    return wrapper

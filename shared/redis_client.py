"""Redis connections with the timeouts every imgclf process uses."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shared.errors import StoreUnavailableError
from shared.settings import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 15


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS arguments for a `rediss://` REDIS_URL (none for `redis://`): the server's
    certificate is verified against REDIS_TLS_CA_FILE (else the system's CAs), unless
    REDIS_TLS_INSECURE opts out, which is logged."""
    if urlsplit(settings.redis_url).scheme != "rediss":
        return {}
    if settings.redis_tls_insecure:
        _warn_insecure_once()
        return {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    options: dict[str, Any] = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    return options


@functools.cache
def _warn_insecure_once() -> None:
    log.warning(
        "REDIS_TLS_INSECURE is on: Redis's certificate is not verified, so whoever answers at "
        "REDIS_URL receives its password and every job"
    )


def _client_options(settings: Settings) -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        **tls_options(settings),
    }


def _sentinel_options(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """For a Sentinel-managed Redis: the sentinels' connection options, and the master's (its
    credentials and database from REDIS_URL, whose host the sentinels replace)."""
    url = urlsplit(settings.redis_url)
    tls = tls_options(settings)
    master = _client_options(settings)
    master["db"] = int(url.path.strip("/") or 0)
    if url.username:
        master["username"] = unquote(url.username)
    if url.password:
        master["password"] = unquote(url.password)
    sentinel: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        **tls,
    }
    if tls:
        master["ssl"] = sentinel["ssl"] = True
    if settings.redis_sentinel_password is not None:
        sentinel["password"] = settings.redis_sentinel_password.get_secret_value()
    return sentinel, master


def connect(settings: Settings) -> redis.Redis:
    """A pooled, blocking client that fails fast when Redis is down, and reconnects after; with
    REDIS_SENTINELS, to whichever server the sentinels name master now."""
    if settings.sentinel_addresses():
        sentinel, master = _sentinel_options(settings)
        sentinels = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            settings.sentinel_addresses(), sentinel_kwargs=sentinel
        )
        client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master, redis_class=redis.Redis, **master
        )
        return client
    return redis.Redis.from_url(settings.redis_url, **_client_options(settings))


def connect_async(settings: Settings) -> redis.asyncio.Redis:
    """The asyncio twin of `connect`, for code that lives on an event loop.

    A pooled connection that Redis closed (a restart) fails on first use, where the blocking pool
    replaces it when checked out; one retry on a fresh connection gives the same behaviour.
    """
    # Not on timeouts: a transaction whose answer timed out may have run.
    retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
    if settings.sentinel_addresses():
        sentinel, master = _sentinel_options(settings)
        managed = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            settings.sentinel_addresses(), sentinel_kwargs=sentinel
        )
        async_client: redis.asyncio.Redis = managed.master_for(
            settings.redis_sentinel_master, redis_class=redis.asyncio.Redis, retry=retry, **master
        )
        return async_client
    return redis.asyncio.Redis.from_url(
        settings.redis_url, retry=retry, **_client_options(settings)
    )


# Answers that say Redis cannot take a command now, not that the command is wrong: down or slow,
# full (maxmemory), a read-only replica, loading its data, a script hogging it, failing over.
_UNAVAILABLE_TYPES: tuple[type[redis.RedisError], ...] = (
    redis.ConnectionError,  # BusyLoadingError (LOADING) is one
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ExecAbortError,  # a transaction refused whole, after an OOM inside it
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # MASTERDOWN is one
)
_UNAVAILABLE_PREFIXES = ("BUSY", "NOREPLICAS", "MASTERDOWN", "LOADING", "OOM", "READONLY")


def is_unavailable(exc: BaseException) -> bool:
    """Whether a Redis error means "retry later" rather than a bug in the command."""
    if isinstance(exc, _UNAVAILABLE_TYPES):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_UNAVAILABLE_PREFIXES)


def _store_message(exc: BaseException) -> str:
    if isinstance(exc, redis.exceptions.OutOfMemoryError | redis.exceptions.ExecAbortError):
        return "The job store (Redis) is full; retry shortly"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "The job store (Redis) is read-only (a replica, or failing over); retry shortly"
    return "The job store (Redis) is unavailable; retry shortly"


@contextlib.contextmanager
def unavailable_as_store_error() -> Iterator[None]:
    """Turn Redis answers that mean "not now" into `StoreUnavailableError` (503 at the API)."""
    try:
        yield
    except redis.RedisError as exc:
        if not is_unavailable(exc):
            raise
        raise StoreUnavailableError(_store_message(exc)) from exc


def store_errors(func: Callable[P, T]) -> Callable[P, T]:
    """`unavailable_as_store_error` around every call of `func`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with unavailable_as_store_error():
            return func(*args, **kwargs)

    return wrapper


# Every imgclf key may be evicted under any policy but this one: job hashes and images carry a
# TTL (the volatile-* policies take them), and the allkeys-* policies take anything.
SAFE_EVICTION_POLICY = "noeviction"


def eviction_problem(client: redis.Redis) -> str | None:
    """Why this Redis could silently drop accepted jobs, or None when it cannot (or the server
    does not let us ask: managed Redis services often disable CONFIG)."""
    try:
        reply: dict[str, str] = client.config_get("maxmemory-policy")  # type: ignore[assignment]
    except redis.ResponseError:
        return None
    policy = reply.get("maxmemory-policy", SAFE_EVICTION_POLICY)
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy == SAFE_EVICTION_POLICY:
        return None
    return (
        f"Redis evicts keys when full (maxmemory-policy {policy}): accepted jobs could vanish. "
        f"Set `maxmemory-policy {SAFE_EVICTION_POLICY}` (full Redis then refuses new jobs with "
        "503), or REDIS_EVICTION_CHECK=warn to run anyway"
    )


def check_eviction_policy(client: redis.Redis, *, refuse: bool) -> None:
    """At start-up: `RuntimeError` (or, with `refuse` off, a warning) on an evicting Redis; a
    warning when Redis cannot be reached yet (the process starts and serves 503s meanwhile)."""
    try:
        problem = eviction_problem(client)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        log.warning("could not check Redis's eviction policy at start-up: %s", exc)
        return
    if problem is None:
        return
    if refuse:
        raise RuntimeError(problem)
    log.warning("%s", problem)

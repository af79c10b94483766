"""Webhook destinations: which a job may name (checked by the API at submit and by the
deliverer before each attempt, since a name can resolve elsewhere later), and which answers to
retry. Pure functions over addresses already resolved; the callers resolve."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

MAX_URL_CHARS = 2048
# Answers worth another attempt: the receiver is failing or asks us to slow down; any other 4xx
# will not change by being sent again.
RETRY_STATUSES = frozenset({408, 429})


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a callback at all (before any lookup), or None."""
    if len(url) > MAX_URL_CHARS:
        return f"callback_url is longer than {MAX_URL_CHARS} characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "callback_url must be an http:// or https:// URL"
    if not parts.hostname:
        return "callback_url has no host"
    if parts.username or parts.password:
        return "callback_url must not carry credentials"
    return None


def address_problem(
    host: str, addresses: Iterable[str], allowed_hosts: frozenset[str]
) -> str | None:
    """Why a callback to `host`, which resolves to `addresses`, is refused, or None. Only public
    addresses are allowed, unless the host is listed in CALLBACK_ALLOWED_HOSTS: a job must not
    make imgclf call into its own network (the cloud's metadata service, Redis, the API)."""
    if host.lower() in allowed_hosts:
        return None
    resolved = list(addresses)
    if not resolved:
        return f"callback_url's host {host} does not resolve"
    for address in resolved:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            return (
                f"callback_url's host {host} is at {ip}, a private, loopback, link-local or "
                "reserved address; list the host in CALLBACK_ALLOWED_HOSTS to allow it"
            )
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (none when it does not); blocking."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def destination_problem(url: str, allowed_hosts: frozenset[str]) -> str | None:
    """`url_problem`, then `address_problem` on what the host resolves to now; blocking."""
    if problem := url_problem(url):
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return address_problem(host, resolve(host, port), allowed_hosts)


def worth_retrying(outcome: httpx.Response | Exception) -> bool:
    """Whether a delivery that ended this way should be attempted again: timeouts, connection
    errors, 5xx, 408 and 429."""
    if isinstance(outcome, Exception):
        return isinstance(outcome, httpx.TransportError)
    return outcome.status_code >= 500 or outcome.status_code in RETRY_STATUSES

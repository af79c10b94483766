"""Optional API keys: with API_KEYS set, every route but /health and /ready needs one of them.

The key is checked by `ApiKeyMiddleware` from the request's headers, before a byte of its body is
read: an anonymous client cannot make the API buffer or parse an upload. Keys are compared as
bytes (a header carries bytes; a non-ASCII key is its UTF-8), in constant time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from shared.errors import UnauthorizedError

# Declared for the OpenAPI document (the "Authorize" button of /docs); the middleware enforces.
KEY_SCHEMES = (
    APIKeyHeader(name="X-API-Key", auto_error=False, description="One of API_KEYS"),
    HTTPBearer(auto_error=False, description="One of API_KEYS, as a bearer token"),
)
OPEN_PATHS = frozenset({"/health", "/ready"})
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
_BEARER = b"bearer "


def offered_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key a request offers: `X-API-Key`, else an `Authorization: Bearer` token."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key" and value:
            return value
        if name == b"authorization" and value[: len(_BEARER)].lower() == _BEARER:
            bearer = value[len(_BEARER) :].strip()
    return bearer or None


def key_is_valid(offered: bytes | None, accepted: frozenset[bytes]) -> bool:
    """Whether `offered` is one of `accepted` (any request is, with keys off). Every key is
    compared, in constant time, so timing reveals nothing about any of them."""
    if not accepted:
        return True
    if offered is None:
        return False
    return any([secrets.compare_digest(offered, key) for key in accepted])


def encoded_keys(keys: frozenset[str]) -> frozenset[bytes]:
    """API_KEYS as a request's headers carry them: UTF-8 bytes."""
    return frozenset(key.encode() for key in keys)


class ApiKeyMiddleware:
    """401 for a request without a valid key, before the app reads its body; `/health` and
    `/ready` stay open (probes), and so do the docs when `docs_open`."""

    def __init__(
        self, app: ASGIApp, *, keys: frozenset[bytes], retry_after_seconds: int, docs_open: bool
    ) -> None:
        self.app = app
        self.accepted = keys
        self.open_paths = OPEN_PATHS | (DOCS_PATHS if docs_open else frozenset())
        self.retry_after_seconds = retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        if key_is_valid(offered_key(scope["headers"]), self.accepted):
            await self.app(scope, receive, send)
            return
        refusal = UnauthorizedError(
            "A valid API key is required: send it as `X-API-Key: <key>` or "
            "`Authorization: Bearer <key>`"
        )
        response = error_response(refusal, retry_after_seconds=self.retry_after_seconds)
        await response(scope, receive, send)


def caller_has_key(scope: Scope, accepted: frozenset[bytes]) -> bool:
    """For open routes that tell more to a caller with a key (`/ready`)."""
    return key_is_valid(offered_key(scope["headers"]), accepted)

"""Optional API keys: with API_KEYS set, every route but /health and /ready needs one of them."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import UnauthorizedError

_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of API_KEYS")
_bearer = HTTPBearer(auto_error=False, description="One of API_KEYS, as a bearer token")


def offers_a_valid_key(
    accepted: frozenset[str],
    header_key: str | None,
    bearer: HTTPAuthorizationCredentials | None,
) -> bool:
    """Whether a request carries one of `accepted` (any request does when keys are off)."""
    if not accepted:
        return True
    offered = header_key or (bearer.credentials if bearer else None)
    # Compare against every key in constant time, so timing reveals nothing about any.
    return offered is not None and any(secrets.compare_digest(offered, key) for key in accepted)


async def _caller_has_key(
    request: Request,
    header_key: Annotated[str | None, Depends(_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    accepted = request.state.service.settings.accepted_api_keys()
    return offers_a_valid_key(accepted, header_key, bearer)


# For open routes that say more to a caller with a key (`/ready`).
CallerHasKey = Annotated[bool, Depends(_caller_has_key)]


def api_key_guard(accepted: frozenset[str]) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency that accepts a request carrying one of `accepted` (or any, when empty).

    `async def` without awaiting: it only compares strings, so it runs on the event loop instead
    of taking a threadpool hop per request.
    """

    async def require_api_key(
        header_key: Annotated[str | None, Depends(_header)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not offers_a_valid_key(accepted, header_key, bearer):
            raise UnauthorizedError(
                "A valid API key is required: send it as `X-API-Key: <key>` or "
                "`Authorization: Bearer <key>`"
            )

    return require_api_key

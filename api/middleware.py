"""Pure ASGI middleware: request body limits enforced while reading, and the seed's metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.errors import error_response
from shared.errors import UploadTooLargeError

# Multipart framing (boundaries, part headers) on top of the file bytes themselves.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class BodySizeLimit:
    """Refuse request bodies over a per-path limit with 413, counting bytes as they arrive.

    A declared Content-Length over the limit is refused before reading anything; a chunked or
    lying body is cut off as soon as the count passes the limit, so no one can make the API
    buffer more than the limit.
    """

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])

        def too_large() -> UploadTooLargeError:
            return UploadTooLargeError(
                f"Upload too large: the request body exceeds {limit} bytes (MAX_UPLOAD_BYTES)"
            )

        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(too_large())(scope, receive, send)
            return
        state = {"received": 0, "exceeded": False, "replied": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["exceeded"] = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app answers after the cut-off (often a parse error), the client
            # gets the 413 that explains it.
            if state["exceeded"]:
                if not state["replied"]:
                    state["replied"] = True
                    await error_response(too_large())(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not state["replied"]:
                await error_response(too_large())(scope, receive, send)


class _BodyTooLarge(Exception):  # noqa: N818 - internal signal, never leaves this module
    pass


class RequestMetrics:
    """Time every HTTP request by route template and status; the seed's `/predict` metrics too."""

    def __init__(self, app: ASGIApp, *, predict_path: str) -> None:
        self.app = app
        self.predict_path = predict_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            # The template, not the raw path: job ids must not become label values.
            template = getattr(route, "path", None) or "unmatched"
            metrics.observe_request(
                method=scope["method"], route=template, status_code=status["code"], seconds=seconds
            )
            if scope["path"] == self.predict_path:
                metrics.observe_prediction(status["code"], seconds)

"""Pure ASGI middleware: every request timed, and the seed's `/predict` metrics."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics


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

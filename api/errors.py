"""The one place where domain errors become HTTP responses: a status and `{code, message}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from shared import errors
from shared.schemas import ErrorBody

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of decides its status.
_STATUS: tuple[tuple[type[errors.ImgclfError], int], ...] = (
    (errors.UnsupportedFormatError, 415),
    (errors.UploadTooLargeError, 413),
    (errors.UploadTimeoutError, 408),
    (errors.InvalidParameterError, 422),
    (errors.ImageTooLargeError, 413),
    (errors.InvalidRequestError, 400),
    (errors.UnauthorizedError, 401),
    (errors.JobNotFoundError, 404),
    (errors.CollectionNotFoundError, 404),
    (errors.CollectionClosedError, 409),
    (errors.CollectionFullError, 409),
    (errors.JobNotCancelableError, 409),
    (errors.JobNotRetryableError, 409),
    (errors.ForbiddenError, 403),
    (errors.IdempotencyKeyReusedError, 422),
    (errors.IdempotencyInProgressError, 409),
    (errors.ServiceUnavailableError, 503),
    (errors.ModelError, 503),
    (errors.JobTimeoutError, 504),
)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the given statuses plus the ones any route can answer
    (401 with API keys on, 422 for bad parameters, 503 when Redis is down), all `ErrorBody`."""
    return {status: {"model": ErrorBody} for status in sorted({*statuses, 401, 422, 503})}


def status_for(exc: errors.ImgclfError) -> int:
    """The HTTP status of a domain error."""
    return next((status for cls, status in _STATUS if isinstance(exc, cls)), 500)


def error_response(exc: errors.ImgclfError, *, retry_after_seconds: int) -> JSONResponse:
    """The JSON error response for a domain error; 503s tell the client when to retry."""
    status = status_for(exc)
    headers = {}
    if status == 503:
        headers["Retry-After"] = str(retry_after_seconds)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        {"code": exc.code, "message": exc.message, "detail": exc.message},
        status_code=status,
        headers=headers,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
    ]
    message = "Invalid request: " + "; ".join(problems)
    return JSONResponse(
        {"code": "validation_error", "message": message, "detail": message}, status_code=422
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request, headers.get("Allow", ""))
    return JSONResponse(
        {"code": code, "message": message, "detail": message},
        status_code=exc.status_code,
        headers=headers,
    )


def _allowed_methods(request: Request, given: str) -> str:
    """Every method the API documents at this path: Starlette's 405 names only the first
    route's where a path has a route per method (GET and DELETE of a job); `given` (its
    header) for a path the document does not list. A concrete path is its own, never also a
    template's that would match it (`/jobs/batch` is not a job id), as OpenAPI matches them."""
    methods: set[str] = set()
    paths, path = request.app.openapi()["paths"], request.scope["path"]
    if path in paths:
        methods = {method.upper() for method in paths[path]}
    for template, operations in paths.items() if not methods else ():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods)) if methods else given


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "Internal server error"
    return JSONResponse(
        {"code": "internal_error", "message": message, "detail": message}, status_code=500
    )


def install_error_handlers(app: FastAPI, *, retry_after_seconds: int) -> None:
    """Map every error the API can meet to a clean JSON response, never a traceback."""

    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ImgclfError)
        if status_for(exc) >= 500:
            # One line per refusal: a Redis outage answers every request with a 503, and a
            # traceback each would bury the log; the cause says which Redis error it was.
            cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
            log.warning("%s: %s%s", exc.code, exc.message, cause)
        return error_response(exc, retry_after_seconds=retry_after_seconds)

    app.add_exception_handler(errors.ImgclfError, domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

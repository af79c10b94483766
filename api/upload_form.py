"""Multipart uploads, parsed by Starlette's form parser with imgclf's limits and memory budget.

The size limits live here and only here: a declared `Content-Length` over a route's limit is
refused before anything is read, a body is cut off as soon as its bytes pass the limit, and a file
as soon as it passes MAX_UPLOAD_BYTES. Upload routes use `UploadRoute`, whose requests parse
their forms with `BudgetedParser`: files wait in a `BudgetedSpool` (memory within the process's
budget, disk beyond it) instead of Starlette's 1 MB spooled files, whose threadpool hop per
64 KB chunk was the largest share of the API's CPU per multi-megabyte upload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from api.upload_spool import BudgetedSpool, MemoryBudget
from shared.errors import ImgclfError, InvalidRequestError, UploadTimeoutError, UploadTooLargeError

# Multipart framing (boundaries, part headers) on top of the file bytes themselves.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """How much one request may send: at most `max_files` files of `max_file_bytes` each, and a
    body of at most its route's number of files' worth plus framing."""

    max_file_bytes: int
    max_files: int
    budget: MemoryBudget
    timeout_seconds: float = 60.0

    def body_limit(self, files: int) -> int:
        return files * self.max_file_bytes + MULTIPART_OVERHEAD_BYTES

    def body_too_large(self, files: int) -> UploadTooLargeError:
        return UploadTooLargeError(
            f"Upload too large: the request body exceeds {self.body_limit(files)} bytes "
            "(MAX_UPLOAD_BYTES)"
        )


class BudgetedUpload(UploadFile):
    """An uploaded file kept in a `BudgetedSpool`: in memory it is written and read on the event
    loop, on disk in the threadpool."""

    def __init__(self, spool: BudgetedSpool, *, source: UploadFile, max_bytes: int) -> None:
        super().__init__(
            cast(BinaryIO, spool), size=0, filename=source.filename, headers=source.headers
        )
        self.spool = spool
        self.max_bytes = max_bytes

    async def write(self, data: bytes) -> None:
        self.size = (self.size or 0) + len(data)
        if self.size > self.max_bytes:
            raise UploadTooLargeError(
                f"Upload too large: each file may have at most {self.max_bytes} bytes "
                "(MAX_UPLOAD_BYTES)"
            )
        if self.spool.on_disk:
            await run_in_threadpool(self.spool.write, data)
        else:
            self.spool.write(data)

    async def read(self, size: int = -1) -> bytes:
        if self.spool.on_disk:
            return await run_in_threadpool(self.spool.read, size)
        return self.spool.read(size)

    async def seek(self, offset: int) -> None:
        self.spool.seek(offset)

    async def close(self) -> None:
        self.spool.close()


class BudgetedParser(MultiPartParser):
    """Starlette's multipart parser, with each file in a `BudgetedUpload`, at most
    `limits.max_files` of them."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        *,
        limits: UploadLimits,
        **form_limits: Any,
    ) -> None:
        # Starlette's own file count is left one above ours, whose message names the limit.
        super().__init__(headers, stream, max_files=limits.max_files + 1, **form_limits)
        self.limits = limits
        self.uploads: list[BudgetedUpload] = []
        self.share = limits.budget.share()

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        # The one place a subclass reaches into Starlette's parser state: the part whose headers
        # just ended, to hand it a budgeted file instead of a SpooledTemporaryFile (pinned by
        # tests/integration/test_upload_memory.py against the Starlette version in uv.lock).
        part = self._current_part
        if part.file is None:
            return
        if len(self.uploads) == self.limits.max_files:
            raise InvalidRequestError(
                f"A batch holds 1 to {self.limits.max_files} files; got more (MAX_BATCH_FILES)"
            )
        part.file.file.close()
        upload = BudgetedUpload(
            BudgetedSpool(self.share),
            source=part.file,
            max_bytes=self.limits.max_file_bytes,
        )
        part.file = upload
        self.uploads.append(upload)

    async def parse(self) -> FormData:
        try:
            return await super().parse()
        except BaseException:
            for upload in self.uploads:
                await upload.close()
            raise


class UploadRequest(Request):
    """A request whose multipart form is parsed by `BudgetedParser`; a refusal of its body is
    kept in `refusal` (FastAPI reports any error raised while parsing as a plain 400)."""

    limits: UploadLimits
    body_files: int = 1
    refusal: ImgclfError | None = None

    async def budgeted_form(self, **form_limits: Any) -> FormData:
        route_files = self.body_files
        limit = self.limits.body_limit(route_files)
        declared = self.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            self.refusal = self.limits.body_too_large(route_files)
            raise self.refusal
        async with aclosing(self._limited_stream(limit, route_files)) as stream:
            parser = BudgetedParser(self.headers, stream, limits=self.limits, **form_limits)
            try:
                return await parser.parse()
            except ImgclfError as exc:  # a file or the body too large, too slow, too many files
                self.refusal = exc
                raise
            except MultiPartException as exc:
                raise HTTPException(status_code=400, detail=exc.message) from exc

    async def _limited_stream(self, limit: int, route_files: int) -> AsyncGenerator[bytes, None]:
        """The body, cut off past `limit` bytes or once it has taken UPLOAD_TIMEOUT_SECONDS: a
        client that stops sending must not hold its share of the upload budget for good."""
        received = 0
        deadline = asyncio.get_running_loop().time() + self.limits.timeout_seconds
        chunks = aiter(self.stream())
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                self.refusal = UploadTimeoutError(
                    f"Upload timed out: the body took longer than {self.limits.timeout_seconds:g}"
                    " s to arrive (UPLOAD_TIMEOUT_SECONDS)"
                )
                raise self.refusal from None
            received += len(chunk)
            if received > limit:
                self.refusal = self.limits.body_too_large(route_files)
                raise self.refusal
            yield chunk

    def form(  # type: ignore[override]  # FastAPI only awaits it
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> Awaitable[FormData]:
        if self.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            return self.budgeted_form(max_fields=max_fields, max_part_size=max_part_size)
        return super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class UploadRoute(APIRoute):
    """A route whose requests are `UploadRequest`s, with the limits of the app's `JobService`
    and a body of at most one file's worth."""

    batch = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            upload_request = UploadRequest(request.scope, request.receive)
            limits: UploadLimits = request.state.service.upload_limits
            upload_request.limits = limits
            upload_request.body_files = limits.max_files if self.batch else 1
            try:
                return await handle(upload_request)
            except Exception:
                if upload_request.refusal is not None:
                    raise upload_request.refusal from None
                raise

        return handler


class BatchUploadRoute(UploadRoute):
    """An upload route whose body may carry MAX_BATCH_FILES files' worth."""

    batch = True

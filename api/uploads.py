"""Turn uploaded files into checked image bytes and the jobs they become."""

from __future__ import annotations

import asyncio
import contextlib
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.upload_form import BudgetedUpload
from shared.errors import ImageTooLargeError, InvalidRequestError
from shared.image_checks import ImageInfo, inspect_image
from shared.schemas import NewJob

T = TypeVar("T")

MAX_FILENAME_CHARS = 255
# A single upload up to this size is checked on the event loop, where a thread hop would cost
# more than the check; larger ones and batches are checked in the threadpool. The structure caps
# (`shared.image_structure`) bound what any check costs.
INLINE_CHECK_BYTES = 256 * 1024


async def upload_bytes(upload: UploadFile) -> bytes:
    """The uploaded file's bytes: handed over without a copy while in memory, read back in the
    threadpool from disk. Its size was bounded while it arrived (`api.upload_form`)."""
    if isinstance(upload, BudgetedUpload):
        data = upload.spool.in_memory_bytes()
        if data is not None:
            return data
    await upload.seek(0)
    return await run_in_threadpool(upload.file.read)


def check_upload(data: bytes, *, filename: str | None, top_k: int, max_pixels: int) -> NewJob:
    """Check an upload's header (within `max_pixels`) and describe the job it becomes.

    No pixels are decoded: the API never holds a decoded image.
    """
    info: ImageInfo = inspect_image(data, max_pixels=max_pixels)
    return NewJob(
        filename=safe_filename(filename),
        content_type=info.content_type,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        top_k=top_k,
    )


def safe_filename(name: str | None) -> str:
    """The client's filename reduced to something safe to store and show: a bare, printable name.

    It is only ever a label: uploaded bytes never touch disk under a client-chosen name.
    """
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    printable = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    if printable.strip(".") == "":
        return "upload"
    return printable[:MAX_FILENAME_CHARS]


async def check_uploads(
    files: Sequence[UploadFile],
    contents: Sequence[bytes],
    *,
    top_k: int,
    max_pixels: int,
    check_seconds: float,
) -> list[NewJob]:
    """Check every file (`check_upload`), naming the file at fault in a batch's error. A small
    single upload is checked on the event loop; the rest in the threadpool, given at most
    `check_seconds` (UPLOAD_CHECK_TIMEOUT_SECONDS): a check that runs out finishes in its thread,
    bounded by the structure caps, and the upload is refused."""

    def check_all() -> list[NewJob]:
        checked = []
        for index, (file, data) in enumerate(zip(files, contents, strict=True)):
            with _naming_the_file(files, index):
                checked.append(
                    check_upload(data, filename=file.filename, top_k=top_k, max_pixels=max_pixels)
                )
        return checked

    return await _within(check_all, contents, check_seconds)


async def check_each(
    files: Sequence[UploadFile],
    contents: Sequence[bytes],
    *,
    top_k: int,
    max_pixels: int,
    check_seconds: float,
) -> list[NewJob | InvalidRequestError]:
    """Check every file as `check_uploads` does, each file's refusal its own (a collection
    records it as the item's failed job) rather than the request's."""

    def check_all() -> list[NewJob | InvalidRequestError]:
        checked: list[NewJob | InvalidRequestError] = []
        for file, data in zip(files, contents, strict=True):
            try:
                checked.append(
                    check_upload(data, filename=file.filename, top_k=top_k, max_pixels=max_pixels)
                )
            except InvalidRequestError as exc:
                checked.append(exc)
        return checked

    return await _within(check_all, contents, check_seconds)


async def _within(check: Callable[[], T], contents: Sequence[bytes], check_seconds: float) -> T:
    if len(contents) == 1 and len(contents[0]) <= INLINE_CHECK_BYTES:
        return check()
    try:
        return await asyncio.wait_for(run_in_threadpool(check), check_seconds)
    except TimeoutError:
        raise ImageTooLargeError(
            f"Checking the image took longer than {check_seconds:g} s "
            "(UPLOAD_CHECK_TIMEOUT_SECONDS): its structure is too complex"
        ) from None


@contextlib.contextmanager
def _naming_the_file(files: Sequence[UploadFile], index: int) -> Iterator[None]:
    """In a batch, an error says which file it is about."""
    try:
        yield
    except InvalidRequestError as exc:
        if len(files) > 1:
            exc.message = f"files[{index}] ({files[index].filename!r}): {exc.message}"
        raise

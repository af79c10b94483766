"""Turn uploaded files into checked image bytes and the jobs they become."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.upload_form import BudgetedUpload
from shared.image_checks import ImageInfo, inspect_image
from shared.schemas import NewJob

MAX_FILENAME_CHARS = 255


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

"""Turn multipart uploads into checked image bytes."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from fastapi import UploadFile

from api.upload_spool import BudgetedSpool
from shared.errors import UploadTooLargeError
from shared.image_checks import ImageInfo, inspect_image
from shared.jobs import NewJob

MAX_FILENAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class CheckedUpload:
    """An upload that passed the cheap checks, ready to become a job."""

    job: NewJob
    data: bytes


async def read_upload(upload: UploadFile, *, max_bytes: int) -> bytes:
    """The uploaded file's bytes, or `UploadTooLargeError` past `max_bytes`.

    A file the form parser kept in memory (`api.upload_spool`) is handed over without a copy;
    one it spilled to disk is read in the threadpool. A file over the limit is refused by its
    recorded size before anything is read.
    """
    if upload.size is not None and upload.size > max_bytes:
        raise _too_large(max_bytes)
    data = upload.file.in_memory_bytes() if isinstance(upload.file, BudgetedSpool) else None
    if data is None:
        await upload.seek(0)
        data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    return data


def check_upload(
    data: bytes, *, filename: str | None, top_k: int, max_pixels: int
) -> CheckedUpload:
    """Check an upload's header (within `max_pixels`) and describe the job it becomes.

    No pixels are decoded: a JPEG costs ~20 us; a PNG's chunk CRCs ~0.2 ms per MB.
    """
    info: ImageInfo = inspect_image(data, max_pixels=max_pixels)
    job = NewJob(
        filename=safe_filename(filename),
        content_type=info.content_type,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        top_k=top_k,
    )
    return CheckedUpload(job, data)


def safe_filename(name: str | None) -> str:
    """The client's filename reduced to something safe to store and show: a bare, printable name.

    It is only ever a label: uploaded bytes never touch disk under a client-chosen name.
    """
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    printable = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    if printable.strip(".") == "":
        return "upload"
    return printable[:MAX_FILENAME_CHARS]


def _too_large(max_bytes: int) -> UploadTooLargeError:
    return UploadTooLargeError(
        f"Upload too large: each file may have at most {max_bytes} bytes (MAX_UPLOAD_BYTES)"
    )

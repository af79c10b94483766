"""The files of an uploaded zip, read within limits: a zip is a few bytes that may claim (or
inflate to) gigabytes, so entries, sizes and nesting are bounded before and while reading."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

ARCHIVE_SUFFIXES = (".zip",)


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """At most `entries` files, `total_bytes` of them inflated, `file_bytes` each (the API's
    MAX_UPLOAD_BYTES: a larger one could never be taken), and an inflation ratio of at most
    `ratio` per file; archives inside are not opened."""

    entries: int = 10_000
    total_bytes: int = 2 * 2**30
    file_bytes: int = 10 * 2**20
    ratio: int = 200


class ArchiveError(ValueError):
    """The archive as a whole is refused: not a zip, or past a limit."""


@dataclass(frozen=True, slots=True)
class Member:
    """A file of the archive: its path inside it, and its bytes or why it was left out."""

    name: str
    data: bytes | None = None
    skipped: str | None = None


def members(archive: bytes, limits: ZipLimits) -> Iterator[Member]:
    """The archive's files in its order (folders, hidden files and macOS's resource forks left
    out). Each file's inflated bytes are counted as they come, whatever its header claims; a
    damaged, encrypted or oddly compressed archive is refused as a whole."""
    try:
        opened = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"not a zip file ({exc})") from None
    try:
        yield from _read(opened, limits)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        raise ArchiveError(f"unreadable ({exc})") from None


def _read(opened: zipfile.ZipFile, limits: ZipLimits) -> Iterator[Member]:
    with opened:
        infos = [info for info in opened.infolist() if _wanted(info)]
        if len(infos) > limits.entries:
            raise ArchiveError(f"{len(infos)} files; at most {limits.entries} per archive")
        if sum(info.file_size for info in infos) > limits.total_bytes:
            raise ArchiveError(f"inflates to more than {limits.total_bytes} bytes")
        total = 0
        for info in infos:
            if PurePosixPath(info.filename).suffix.lower() in ARCHIVE_SUFFIXES:
                yield Member(info.filename, skipped="an archive inside the archive: not opened")
                continue
            if info.file_size > limits.file_bytes:
                yield Member(info.filename, skipped=f"larger than {limits.file_bytes} bytes")
                continue
            if info.file_size > limits.ratio * max(info.compress_size, 1):
                raise ArchiveError(f"{info.filename}: compressed more than {limits.ratio}:1")
            with opened.open(info) as entry:
                data = entry.read(limits.file_bytes + 1)
            total += len(data)
            if len(data) > limits.file_bytes or total > limits.total_bytes:
                raise ArchiveError(f"{info.filename}: inflates past what its header says")
            yield Member(info.filename, data)


def _wanted(info: zipfile.ZipInfo) -> bool:
    parts = PurePosixPath(info.filename).parts
    return not info.is_dir() and not any(p.startswith(".") or p == "__MACOSX" for p in parts)

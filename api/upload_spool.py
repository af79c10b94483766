"""Where uploaded files wait while their requests arrive and are checked: in memory within one
budget per API process (UPLOAD_MEMORY_BYTES), in temporary files beyond it.

Requests with a file on disk read it back and submit one at a time, so the API holds at most the
budget plus one request's files, however many uploads arrive at once (16 clients sending 4.7 MB
photos: peak RSS 248 MB before, 106-126 MB with the 16 MiB default), and no upload is refused
for it. A batch's files go to Redis in one transaction, so that one request's share is still
its whole body for a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Sequence
from tempfile import SpooledTemporaryFile
from typing import Any, cast

from fastapi import UploadFile
from starlette import formparsers

from api import metrics


class MemoryBudget:
    """Bytes of uploads held in memory by this process, at most `limit` in all, and the turn that
    requests with files on disk take to read them back for submission, one request at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.disk_turn = asyncio.Lock()
        self._in_use = 0
        # Writes run on the event loop, but a rolled-over file may be closed in the threadpool.
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    def take(self, size: int) -> bool:
        """Reserve `size` bytes if they fit."""
        with self._lock:
            if self._in_use + size > self.limit:
                return False
            self._in_use += size
        metrics.UPLOAD_MEMORY_BYTES.inc(size)
        return True

    def give_back(self, size: int) -> None:
        if size:
            with self._lock:
                self._in_use -= size
            metrics.UPLOAD_MEMORY_BYTES.dec(size)


class BudgetedSpool(SpooledTemporaryFile[bytes]):
    """One uploaded file: in memory while `budget` has room for each chunk, then on disk.

    The bytes it held count against the budget until it is closed, and `in_memory_bytes` hands
    them out without a copy, so close it only once they have been used (submitted to Redis).
    """

    def __init__(self, budget: MemoryBudget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget
        self.on_disk = False
        self._held = 0

    def write(self, s: Any) -> int:
        # Runs on the event loop while the file is in memory: the one rollover copies at most
        # this file's bytes so far to the page cache (~0.3 ms per MB), and later writes go to the
        # threadpool (Starlette checks `_rolled`).
        if not self.on_disk:
            size = len(s)
            if self.budget.take(size):
                self._held += size
            else:
                metrics.UPLOADS_SPILLED.inc()
                self.rollover()
        return super().write(s)

    def rollover(self) -> None:
        # Also called by the base class once the file outgrows `max_size` (to be refused).
        if not self.on_disk:
            super().rollover()
            self.on_disk = True
            self._give_back()

    def close(self) -> None:
        super().close()
        self._give_back()

    def in_memory_bytes(self) -> bytes | None:
        """The whole file, sharing the buffer it was written to; None once it is on disk."""
        if self.on_disk:
            return None
        # BytesIO.getvalue hands over its own buffer (trimmed to size) instead of copying it.
        return cast(io.BytesIO, self._file).getvalue()

    def _give_back(self) -> None:
        self.budget.give_back(self._held)
        self._held = 0


def disk_turn(files: Sequence[UploadFile]) -> contextlib.AbstractAsyncContextManager[object]:
    """Hold this around reading `files` and submitting them: requests with a file on disk take
    turns, so at most one of them at a time has its files back in memory beyond the budget."""
    for file in files:
        if isinstance(file.file, BudgetedSpool) and file.file.on_disk:
            return file.file.budget.disk_turn
    return contextlib.nullcontext()


def spool_uploads(budget: MemoryBudget, *, max_file_bytes: int) -> None:
    """Make Starlette's form parser keep uploaded files in `BudgetedSpool`s (in this process).

    Starlette's own default spills every file over 1 MB to disk and then hands each ~64 KB chunk
    to the threadpool: for multi-megabyte photos those hops and the disk were the largest share
    of the API's CPU per upload. Here a file stays in memory while the budget allows.
    """

    def spool(max_size: int = 0, **kwargs: Any) -> BudgetedSpool:
        return BudgetedSpool(budget, max_size=max_size, **kwargs)

    # The parser builds each file's spool through this module-level name; a test checks that it
    # still does (tests/integration/test_upload_memory.py), so an upgrade cannot silently undo it.
    formparsers.SpooledTemporaryFile = spool  # type: ignore[attr-defined,assignment]
    formparsers.MultiPartParser.spool_max_size = max_file_bytes

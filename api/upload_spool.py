"""Where uploaded files wait while their requests arrive and are checked: in memory within one
budget per API process (UPLOAD_MEMORY_BYTES), in temporary files beyond it.

Requests with a file on disk read it back and submit one at a time, so the API holds at most the
budget plus one request's files, however many uploads arrive at once, and no upload is refused
for it. One request holds at most a quarter of the budget in memory (`RequestShare`): a large
batch cannot push every other upload to disk. A batch's files go to Redis in one transaction,
so that one request's part is still its whole body for a moment. (Measured effects:
docs/PERFORMANCE.md, "Memory".)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import tempfile
import threading
from collections.abc import Sequence
from typing import IO, Protocol

from api import metrics

# One request may hold this part of the process's upload memory at most.
REQUEST_SHARE = 0.25


class Budget(Protocol):
    """Where a spool reserves the memory its bytes take."""

    @property
    def disk_turn(self) -> asyncio.Lock: ...

    def take(self, size: int) -> bool: ...

    def give_back(self, size: int) -> None: ...


class MemoryBudget:
    """Bytes of uploads held in memory by this process, at most `limit` in all, and the turn that
    requests with files on disk take to read them back for submission, one request at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.disk_turn = asyncio.Lock()
        self._in_use = 0
        # Writes run on the event loop, but a spilled file may be closed in the threadpool.
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

    def share(self) -> RequestShare:
        """A new request's part of this budget."""
        return RequestShare(self, int(self.limit * REQUEST_SHARE))


class RequestShare:
    """One request's files' part of the process budget: at most `cap` bytes of it."""

    def __init__(self, budget: MemoryBudget, cap: int) -> None:
        self.budget = budget
        self.cap = cap
        self._held = 0
        self._lock = threading.Lock()

    @property
    def disk_turn(self) -> asyncio.Lock:
        return self.budget.disk_turn

    @property
    def held(self) -> int:
        return self._held

    def take(self, size: int) -> bool:
        with self._lock:
            if self._held + size > self.cap or not self.budget.take(size):
                return False
            self._held += size
        return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._held -= size
        self.budget.give_back(size)


class BudgetedSpool:
    """One uploaded file: in memory while `budget` has room for each chunk, then on disk.

    The bytes it held count against the budget until it is closed, and `in_memory_bytes` hands
    them out without a copy, so close it only once they have been used (submitted to Redis).
    """

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._memory: io.BytesIO | None = io.BytesIO()
        self._disk: IO[bytes] | None = None
        self._held = 0

    @property
    def on_disk(self) -> bool:
        return self._disk is not None

    @property
    def _file(self) -> IO[bytes]:
        file = self._disk if self._disk is not None else self._memory
        if file is None:
            raise ValueError("I/O operation on a closed upload")
        return file

    def write(self, data: bytes) -> int:
        # While the file is in memory this runs on the event loop: the one move to disk copies
        # at most this file's bytes so far to the page cache; later writes go to the threadpool.
        if self._memory is not None and self._disk is None:
            if self.budget.take(len(data)):
                self._held += len(data)
            else:
                metrics.UPLOADS_SPILLED.inc()
                self.rollover()
        return self._file.write(data)

    def rollover(self) -> None:
        """Move the file to disk and give its memory back."""
        if self._disk is not None or self._memory is None:
            return
        disk = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the spool
        disk.write(self._memory.getbuffer())
        disk.seek(self._memory.tell())
        self._memory, self._disk = None, disk
        self._give_back()

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        for file in (self._memory, self._disk):
            if file is not None:
                file.close()
        self._memory = self._disk = None
        self._give_back()

    def in_memory_bytes(self) -> bytes | None:
        """The whole file, sharing the buffer it was written to; None once it is on disk."""
        if self._memory is None:
            return None
        # BytesIO.getvalue hands over its own buffer (trimmed to size) instead of copying it.
        return self._memory.getvalue()

    def _give_back(self) -> None:
        self.budget.give_back(self._held)
        self._held = 0


def disk_turn(
    spools: Sequence[BudgetedSpool],
) -> contextlib.AbstractAsyncContextManager[object]:
    """Hold this around reading `spools` and submitting them: requests with a file on disk take
    turns, so at most one of them at a time has its files back in memory beyond the budget."""
    for spool in spools:
        if spool.on_disk:
            return spool.budget.disk_turn
    return contextlib.nullcontext()

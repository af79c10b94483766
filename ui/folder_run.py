"""`imgclf submit`'s run: image files and folders classified as one collection, streamed.

Files are found lazily and sent a few requests at a time (`in_flight`), each of up to `batch`
images named by their custom_id; results are read from the collection's cursor as they end and
written at once. So memory holds a few requests' images, whatever the number of files, and the
HTTP requests grow with the images: one per `batch` images, and one read of results per second
or per long-poll. The run keeps no more of its images waiting than the workers finish in a few
seconds (`FolderRun._wait_for_room`). The collection is opened with an Idempotency-Key drawn
from the command (`run_key`): the same command started again continues the same collection, and
the API adds each custom_id once, so no image is classified twice.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from shared.image_checks import FILE_EXTENSIONS
from ui.cli_output import Progress, RowWriter
from ui.client import ApiClient, ApiError, Upload

T = TypeVar("T")

IMAGE_SUFFIXES = frozenset(FILE_EXTENSIONS)
LONG_POLL_SECONDS = 10.0
# Between reads of results that found some: results are read at most about this often.
READ_EVERY_SECONDS = 1.0
# Images of the run waiting in the pipeline at most: what it finishes in this long, or this many.
WINDOW_SECONDS = 3.0
MIN_WINDOW = 256


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The collection's options (None: the API's default) and how the run sends images."""

    model: str | None = None
    top_k: int | None = None
    priority: str | None = None
    job_callback_url: str | None = None
    batch: int = 32
    in_flight: int = 4
    # Give up when no result has come for this long after the last upload.
    timeout: float = 300.0
    new: bool = False

    def collection_options(self) -> dict[str, Any]:
        chosen = {
            "model": self.model,
            "top_k": self.top_k,
            "priority": self.priority,
            "job_callback_url": self.job_callback_url,
        }
        return {name: value for name, value in chosen.items() if value is not None}


def find_images(paths: Sequence[Path]) -> Iterator[tuple[str, Path]]:
    """Each image's custom_id and file: files named directly (their path as given), and those
    found in folders, lazily, in sorted order (a folder's path relative to it; with several
    paths given, the folder's path as given first, so two folders' files never share an id)."""
    for root in paths:
        if not root.is_dir():
            yield str(root), root
            continue
        prefix = root if len(paths) > 1 else Path()
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                    path = Path(folder, name)
                    yield (prefix / path.relative_to(root)).as_posix(), path


def run_key(paths: Sequence[Path], options: RunOptions, api_url: str) -> str:
    """The Idempotency-Key of the command: its resolved paths, options and API; `--new` makes
    every run its own."""
    parts = [api_url, *(str(p.resolve()) for p in paths), repr(options.collection_options())]
    if options.new:
        parts.append(os.urandom(16).hex())
    return "imgclf-submit-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Tally:
    """What the run has seen: images uploaded, rows written, and how each ended."""

    sent: int = 0
    uploaded: int = 0
    written: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    upload_error: BaseException | None = None
    uploads_done: bool = False


class FolderRun:
    """One `imgclf submit`: uploads on worker threads, results on the calling thread."""

    def __init__(
        self,
        client: ApiClient,
        paths: Sequence[Path],
        options: RunOptions,
        *,
        writer: RowWriter,
        progress: Progress | None,
        announce: TextIO | None = None,
    ) -> None:
        """`announce`: where to say which collection the run fills (and how many images)."""
        self.client, self.paths, self.options = client, paths, options
        self.writer, self.progress, self.announce = writer, progress, announce
        self.tally = Tally()
        self.resumed = False
        self.rate = 0.0
        self.samples: list[tuple[float, int]] = []
        self.total = sum(1 for _ in find_images(paths))

    def run(self) -> tuple[Tally, bool]:
        """The tally, and whether every image's result came in time."""
        key = run_key(self.paths, self.options, self.client.base_url)
        collection = self.client.create_collection(
            self.options.collection_options(), idempotency_key=key
        )
        cid = collection["collection_id"]
        self.collection_id = cid
        if self.announce is not None:
            self.announce.write(f"imgclf: collection {cid}, {self.total} images\n")
            self.announce.flush()
        if collection["state"] in ("canceled", "expired"):
            raise ApiError(
                409,
                f"collection_{collection['state']}",
                f"The collection this command made before ({cid}) is {collection['state']}; "
                "run it with --new to start a new one",
            )
        self.resumed = collection["counts"]["total"] > 0
        if collection["state"] == "open":
            threading.Thread(target=self._upload_all, args=(cid,), daemon=True).start()
        else:  # a run that had uploaded everything: its results are read again
            self.tally.uploaded, self.tally.uploads_done = self.total, True
        return self.tally, self._read_results(cid)

    def _upload_all(self, cid: str) -> None:
        try:
            with ThreadPoolExecutor(self.options.in_flight) as pool:
                pending: set[Future[int]] = set()
                for chunk in chunks(find_images(self.paths), self.options.batch):
                    self._wait_for_room()
                    self.tally.sent += len(chunk)
                    if len(pending) >= self.options.in_flight:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            self.tally.uploaded += future.result()
                    pending.add(pool.submit(self._upload, cid, chunk))
                for future in pending:
                    self.tally.uploaded += future.result()
            self.client.close_collection(cid)
        except BaseException as exc:  # the results loop reports it
            self.tally.upload_error = exc
        finally:
            self.tally.uploads_done = True

    def _wait_for_room(self) -> None:
        """Hold the next upload while more of this run's images wait in the pipeline than it
        finishes in WINDOW_SECONDS (at least MIN_WINDOW): the workers never run dry, and the
        queue it shares with other clients is not filled to its cap (where every client meets
        503s and waits out a Retry-After while the workers drain it)."""
        while self.tally.sent - self.tally.written > max(MIN_WINDOW, self.rate * WINDOW_SECONDS):
            if self.tally.upload_error is not None:
                return
            time.sleep(0.05)

    def _upload(self, cid: str, chunk: list[tuple[str, Path]]) -> int:
        """Send a chunk's images, and say how many the collection now holds of it; on a run
        that continues an earlier one, only those it does not hold yet are sent (the API would
        add the others nothing, but their bytes would travel again)."""
        missing = chunk
        if self.resumed:
            known = self.client.known_images(cid, [custom_id for custom_id, _ in chunk])
            missing = [(custom_id, path) for custom_id, path in chunk if custom_id not in known]
        if missing:
            uploads = [(c, Upload(path.name, path.read_bytes())) for c, path in missing]
            self.client.add_images(cid, uploads)
        return len(chunk)

    def _measure_rate(self) -> None:
        """Images finished per second over the last few reads."""
        now = time.monotonic()
        self.samples.append((now, self.tally.written))
        while len(self.samples) > 2 and now - self.samples[1][0] > WINDOW_SECONDS:
            self.samples.pop(0)
        (first, done_then), (last, done_now) = self.samples[0], self.samples[-1]
        self.rate = (done_now - done_then) / (last - first) if last > first else 0.0

    def _read_results(self, cid: str) -> bool:
        cursor, last_news = 0, time.monotonic()
        while True:
            if self.tally.upload_error is not None:
                raise self.tally.upload_error
            page = self.client.collection_results(cid, cursor=cursor, wait=LONG_POLL_SECONDS)
            for row in page.rows:
                self.writer.write(row)
                self.tally.by_status[row["status"]] = self.tally.by_status.get(row["status"], 0) + 1
            self.tally.written += len(page.rows)
            self._measure_rate()
            cursor = page.next_cursor
            if self.progress is not None:
                self.progress.draw(self.tally.written, self.tally.uploaded, self.total)
            if page.state in ("completed", "canceled", "expired") and not page.rows:
                return page.state != "expired"  # canceled: its rows say so
            if page.rows or not self.tally.uploads_done:
                last_news = time.monotonic()
            elif time.monotonic() - last_news > self.options.timeout:
                return False
            if page.rows:
                time.sleep(READ_EVERY_SECONDS)

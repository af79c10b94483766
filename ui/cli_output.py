"""What the `imgclf` command prints: tables, result rows and its progress bar."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from shared.collection_schemas import csv_lines, jsonl_line
from shared.schemas import Job
from ui.formatting import percent


@dataclass
class Item:
    path: Path
    job: Job | None = None
    error: str | None = None


def format_table(items: Sequence[Item]) -> str:
    """A plain-text table: file, status, top class and its probability, job id."""
    return table([("FILE", "STATUS", "TOP CLASS", "PROB", "JOB ID"), *map(_row, items)])


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _row(item: Item) -> tuple[str, str, str, str, str]:
    if item.job is None:
        return (str(item.path), "rejected", item.error or "", "", "")
    job = item.job
    if job.result is not None:
        top = job.result.predictions[0]
        return (str(item.path), job.status.value, top.label, percent(top.probability), job.job_id)
    detail = job.error.message if job.error is not None else ""
    return (str(item.path), job.status.value, detail, "", job.job_id)


class Progress:
    """One line on a terminal: images finished and uploaded out of all, the rate of finishing
    and the time left at that rate; drawn at most every `every` seconds but the last."""

    def __init__(self, stream: TextIO, *, width: int = 30, every: float = 0.2) -> None:
        self.stream, self.width, self.every = stream, width, every
        self.started = self.drawn = time.monotonic()
        self.first_done: int | None = None

    def draw(self, done: int, uploaded: int, total: int) -> None:
        now = time.monotonic()
        if self.first_done is None:
            self.first_done = done  # results of an earlier run, read again: not this run's rate
        if now - self.drawn < self.every and done < total:
            return
        self.drawn = now
        filled = self.width * done // total if total else self.width
        rate = (done - self.first_done) / max(now - self.started, 1e-9)
        eta = f"ETA {_duration((total - done) / rate)}" if rate > 0 and done < total else ""
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}]"
        line = f"{bar} {done}/{total} done, {uploaded} uploaded, {rate:.1f} img/s {eta}"
        self.stream.write(f"\r{line.rstrip()}\x1b[K")
        self.stream.flush()

    def end(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class RowWriter:
    """Result rows as they come: CSV or JSONL (the API's results' own format), or a line of
    text each for people, with a header first."""

    def __init__(self, stream: TextIO, kind: Literal["csv", "jsonl", "text"]) -> None:
        self.stream, self.kind = stream, kind
        if kind == "csv":
            stream.write(csv_lines([], header=True))
        elif kind == "text":
            stream.write(_text(("STATUS", "PROB", "TOP CLASS", "IMAGE")))

    def write(self, row: dict[str, Any]) -> None:
        if self.kind == "csv":
            self.stream.write(csv_lines([row], header=False))
        elif self.kind == "jsonl":
            self.stream.write(jsonl_line(row))
        else:
            probability = row["probability"]
            prob = percent(probability) if probability is not None else ""
            detail = row["label"] or row["error"] or ""
            self.stream.write(_text((row["status"], prob, detail, row["custom_id"] or "")))
        self.stream.flush()


def _text(cells: tuple[str, str, str, str]) -> str:
    status, prob, detail, image = cells
    return f"{status:<10} {prob:>7}  {detail[:28]:<28}  {image}\n"

"""What the `imgclf` command prints: tables, JSON rows and its progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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


def as_json(item: Item) -> dict[str, Any]:
    if item.job is None:
        return {"file": str(item.path), "status": "rejected", "error": item.error}
    return {"file": str(item.path), **item.job.model_dump(mode="json")}


def draw(stream: TextIO, done: int, total: int, width: int = 30) -> None:
    filled = width * done // total if total else width
    stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} classified")
    stream.flush()

"""A collection's JSON shapes, and the rows of its results (JSONL or CSV), which the API
serves and the `imgclf` command writes alike."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.callbacks import MAX_URL_CHARS
from shared.priorities import DEFAULT_PRIORITY, Priority
from shared.schemas import CallbackState, Job


class CollectionState(StrEnum):
    """`open` takes images; `running` is closed with jobs still to end; `completed` closed with
    every job ended; `canceled` by its owner; `expired` past `expires_at` before completing."""

    OPEN = "open"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in (
            CollectionState.COMPLETED,
            CollectionState.CANCELED,
            CollectionState.EXPIRED,
        )


class CollectionCounts(BaseModel):
    """Its images, in all and by their jobs' status."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.canceled


class CollectionOptions(BaseModel):
    """How a collection's images are classified: every image alike."""

    model: str | None = Field(
        default=None, max_length=32, description="By name; default: DEFAULT_MODEL"
    )
    top_k: int | None = Field(
        default=None, ge=1, le=1000, description="Classes per image (default DEFAULT_TOP_K)"
    )
    priority: Priority = Field(
        default=DEFAULT_PRIORITY, description="high, normal or low, as for single jobs"
    )
    job_callback_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="Where each job is POSTed when it ends (a signed webhook, as a submit's "
        "`callback_url`); needs WEBHOOK_SECRET",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="Where the collection is POSTed once, when it has completed (or was "
        "canceled and its running jobs have ended): a signed webhook of type "
        "`collection.finished`; needs WEBHOOK_SECRET",
    )


class Collection(BaseModel):
    collection_id: str
    state: CollectionState
    model: str
    top_k: int
    priority: Priority
    job_callback_url: str | None = None
    callback_url: str | None = None
    callback: CallbackState | None = Field(
        default=None, description="With `callback_url`: the webhook's delivery, once it is done"
    )
    counts: CollectionCounts
    created_at: datetime
    closed_at: datetime | None = None
    expires_at: datetime = Field(
        description="Images are accepted until then; the collection and its results are kept "
        "as long again (JOB_TTL_SECONDS) and then deleted"
    )


# The fields of a result row, in the order of a CSV's columns.
RESULT_FIELDS = ("custom_id", "job_id", "status", "label", "probability", "predictions", "error")


def result_row(job: Job) -> dict[str, Any]:
    """One image's line of results: its top class and probability, its top-k, or its error's
    code."""
    predictions = job.result.predictions if job.result is not None else []
    top = predictions[0] if predictions else None
    return {
        "custom_id": job.custom_id or job.filename,
        "job_id": job.job_id,
        "status": job.status.value,
        "label": top.label if top else None,
        "probability": top.probability if top else None,
        "predictions": [p.model_dump() for p in predictions],
        "error": job.error.code if job.error is not None else None,
    }


def gone_row(job_id: str) -> dict[str, Any]:
    """The line of an ended job deleted since (JOB_TTL_SECONDS after it was queued)."""
    row: dict[str, Any] = dict.fromkeys(RESULT_FIELDS)
    return {**row, "job_id": job_id, "status": "expired", "predictions": []}


def jsonl_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def csv_lines(rows: Iterable[dict[str, Any]], *, header: bool) -> str:
    """Rows as CSV (RFC 4180); `predictions` as JSON in its cell, an absent value empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(RESULT_FIELDS)
    for row in rows:
        cells = {**row, "predictions": json.dumps(row["predictions"])}
        writer.writerow("" if cells[name] is None else cells[name] for name in RESULT_FIELDS)
    return out.getvalue()

"""Pure helpers that turn API data into what the UI shows."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image

from shared.priorities import DEFAULT_PRIORITY
from shared.schemas import Job, JobStatus, Prediction

# Streamlit badge markdown: colour carries the state, the word says it.
STATUS_LABELS = {
    JobStatus.QUEUED: ":gray-badge[queued]",
    JobStatus.RUNNING: ":blue-badge[running]",
    JobStatus.SUCCEEDED: ":green-badge[done]",
    JobStatus.FAILED: ":red-badge[failed]",
    JobStatus.CANCELED: ":orange-badge[canceled]",
}


def percent(probability: float, digits: int = 1) -> str:
    """0.6809 -> '68.1 %'."""
    return f"{probability * 100:.{digits}f} %"


def status_label(status: JobStatus) -> str:
    return STATUS_LABELS[status]


@dataclass(frozen=True, slots=True)
class ChartRow:
    rank: int
    label: str
    percent: float


def chart_rows(predictions: Sequence[Prediction], *, limit: int = 10) -> list[ChartRow]:
    """Bars for the top classes, highest first, probabilities in percent (0-100)."""
    ordered = sorted(predictions, key=lambda p: (-p.probability, p.class_id))[:limit]
    return [
        ChartRow(rank=i + 1, label=p.label, percent=round(p.probability * 100, 2))
        for i, p in enumerate(ordered)
    ]


def progress(jobs: Iterable[Job]) -> tuple[int, int]:
    """(finished, total) for a progress bar."""
    statuses = [job.status for job in jobs]
    return sum(s.terminal for s in statuses), len(statuses)


def milliseconds(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "n/a"
    return f"{seconds * 1000:.1f} ms"


def ratio(part: float | None, whole: float | None) -> float | None:
    """part / whole, or None when there is nothing to divide."""
    if part is None or not whole:
        return None
    return part / whole


def quantile_from_buckets(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Prometheus's histogram_quantile on cumulative (upper bound, count) pairs, sorted by bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            fraction = (rank - lower_count) / width if width else 0.0
            return lower_bound + (bound - lower_bound) * fraction
        lower_bound, lower_count = bound, count
    return lower_bound


THUMBNAIL_PIXELS = 320
_THUMBNAIL_MAX_SOURCE_PIXELS = 100_000_000


def thumbnail(data: bytes) -> bytes | None:
    """A small PNG preview of an upload, or None when it is not a displayable image.

    The browser gets a few kilobytes instead of a 12-megapixel photo, TIFF previews work, and a
    broken upload shows no preview instead of an error.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > _THUMBNAIL_MAX_SOURCE_PIXELS:
                return None
            image.draft("RGB", (THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            preview = image.convert("RGBA") if image.mode not in ("RGB", "RGBA") else image
            out = io.BytesIO()
            preview.save(out, format="PNG")
            return out.getvalue()
    except Exception:
        return None


def job_details(job: Job) -> list[str]:
    """The lines that say how a job was asked for and where its result went: its model, its
    priority (when not normal), the job it retries, and its webhook's delivery."""
    lines = [f"model `{job.model}`"]
    if job.priority != DEFAULT_PRIORITY:
        lines.append(f"{job.priority} priority")
    if job.retry_of:
        lines.append(f"retry of `{job.retry_of}`")
    if job.callback is not None:
        callback = job.callback
        attempts = f"{callback.attempts} attempt{'s' if callback.attempts != 1 else ''}"
        line = f"webhook {callback.status} ({attempts})"
        if callback.last_error and callback.status != "delivered":
            line += f": {callback.last_error}"
        lines.append(line)
    elif job.callback_url:
        lines.append("webhook waits for the job to end")
    return lines

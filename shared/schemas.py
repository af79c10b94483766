"""The JSON shapes that cross process boundaries: job records, results, errors."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.model_cards import ORIGINAL_MODEL
from shared.priorities import DEFAULT_PRIORITY, Priority


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class Prediction(BaseModel):
    class_id: int = Field(ge=0, description="The class's index in the model's labels")
    label: str
    probability: float = Field(ge=0.0, le=1.0)


class ModelRef(BaseModel):
    """The model that ran a job: its name, its card's version and its file's sha256."""

    name: str
    version: str = ""
    sha256: str


class Timings(BaseModel):
    queue_wait_ms: float = Field(description="From submission to the worker starting the job")
    decode_ms: float
    preprocess_ms: float
    inference_ms: float


class JobResult(BaseModel):
    predictions: list[Prediction] = Field(description="Top-k classes, most probable first")
    model: ModelRef
    timings: Timings


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code")
    message: str = Field(description="What went wrong, for people")


class CallbackState(BaseModel):
    """Where the job's webhook stands: `pending` until its first attempt ends, then `retrying`,
    `delivered` or `failed`."""

    status: Literal["pending", "retrying", "delivered", "failed"]
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None


class NewJob(BaseModel):
    """What the API learns about an upload before it becomes a job."""

    filename: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    top_k: int
    model: str = Field(
        default=ORIGINAL_MODEL, description="The model that classifies the image (its name)"
    )
    priority: Priority = Field(
        default=DEFAULT_PRIORITY, description="Workers take high before normal before low"
    )
    retry_of: str | None = Field(
        default=None, description="The failed or canceled job this one retries, if any"
    )
    callback_url: str | None = Field(
        default=None, description="Where the finished job is POSTed (a signed webhook), if any"
    )
    collection_id: str | None = Field(
        default=None, description="The collection the job belongs to, if any"
    )
    custom_id: str | None = Field(
        default=None, description="In a collection: the client's own id for the image"
    )


class _JobState(BaseModel):
    job_id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Job(NewJob, _JobState):
    """A job as clients see it, and as the job store keeps it (one Redis hash field per field).

    Declared once: the store's codec derives the hash from these fields. The bases' order keeps
    `job_id` first in the JSON.
    """

    result: JobResult | None = None
    error: ErrorBody | None = None
    callback: CallbackState | None = Field(
        default=None, description="With `callback_url`: the webhook's delivery, once the job ended"
    )

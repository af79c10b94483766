"""The job record's codec: `shared.schemas.Job` to and from its Redis hash and finish events.

The hash holds one field per `Job` field (strings, '' for none; nested models as JSON) plus the
store's own bookkeeping (`attempts`, `worker`, `owner`, `trace`; and from the scripts: `msg`, the
delivery tag of the group message that carries it, `claimed_ms`, `claimed_n`), so the shape is
declared once, in the schema.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from shared.schemas import Job, JobStatus, NewJob


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if models else None


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


# Fields stored as JSON, parsed by pydantic-core straight from the string.
_NESTED: dict[str, type[BaseModel]] = {
    name: model
    for name, field in Job.model_fields.items()
    if (model := _nested_model(field.annotation)) is not None
}


def queued_fields(
    job: NewJob, *, created_at: float, owner: str = "", trace: str = ""
) -> dict[str, str]:
    """The hash of a job just queued; `owner` is whose it is (a digest of the caller's API key,
    '' with keys off), kept for the caller's list of failures and never shown; `trace` the
    submit's trace context, which the worker's spans for the job continue."""
    fields = {name: "" if value is None else str(value) for name, value in job.model_dump().items()}
    return {
        "status": JobStatus.QUEUED.value,
        "created_at": repr(created_at),
        "attempts": "0",
        "owner": owner,
        "trace": trace,
        **fields,
    }


def job_from_fields(job_id: str, fields: Mapping[str, str]) -> Job:
    """The job a hash (or a finish event's copy of it) describes; timestamps are Unix seconds."""
    values: dict[str, Any] = {"job_id": job_id}
    for name, value in fields.items():
        if name in _NESTED:
            values[name] = _NESTED[name].model_validate_json(value)
        elif name in Job.model_fields and value != "":
            values[name] = value
    return Job.model_validate(values)


def decoded(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def announced_job(message: str) -> tuple[str, Job | None]:
    """The job id of a finish event, and the job as it ended, when the event carries it (a bare
    id, sent for a job too large to announce or by an older worker, carries nothing: read the
    job instead)."""
    job_id, _, state = message.partition(" ")
    if not state:
        return job_id, None
    try:
        return job_id, job_from_fields(job_id, json.loads(state))
    except (ValueError, KeyError, TypeError):
        return job_id, None

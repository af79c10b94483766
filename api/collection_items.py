"""A collection add's items: their custom_ids (chosen and checked), and what each becomes, a
request of its own to the group committer (its custom_id's record its Idempotency-Key) or, for
a file that is not an image, a failed job of the collection."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import UploadFile

from api.uploads import safe_filename
from shared import tracing
from shared.collection_schemas import Collection
from shared.errors import InvalidCustomIdError, InvalidRequestError
from shared.jobs import Idempotency, Request
from shared.jobs.collections import item_fingerprint
from shared.jobs.keys import custom_id_key
from shared.schemas import ErrorBody, Job, NewJob

MAX_CUSTOM_ID_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Added:
    """One image of an add: its custom_id, the job that stands for it, and whether this request
    added it (False: added before)."""

    custom_id: str
    job: Job
    added: bool


def custom_ids(files: Sequence[UploadFile], named: Sequence[str] | None) -> list[str]:
    """Each file's custom_id: the `custom_id` fields in order, else each part's filename."""
    if named is not None and len(named) != len(files):
        raise InvalidCustomIdError(
            f"custom_id: {len(named)} given for {len(files)} files; give one per file, or none "
            "(each file's name is its custom_id)"
        )
    chosen = list(named) if named is not None else [file.filename or "" for file in files]
    for index, custom_id in enumerate(chosen):
        if problem := custom_id_problem(custom_id):
            raise InvalidCustomIdError(
                f"custom_id of files[{index}] ({custom_id[:80]!r}): {problem}"
            )
    return chosen


def custom_id_problem(custom_id: str) -> str | None:
    if not custom_id:
        return "empty (name the file, or send a custom_id field per file)"
    if len(custom_id) > MAX_CUSTOM_ID_CHARS:
        return f"longer than {MAX_CUSTOM_ID_CHARS} characters"
    if any(unicodedata.category(c) == "Cc" for c in custom_id):
        return "control characters are not allowed"
    return None


# An item as checked: its custom_id, its upload, the upload's bytes, its job or why not.
Item = tuple[str, UploadFile, bytes, NewJob | InvalidRequestError]


def item_requests(
    collection: Collection, items: Sequence[Item], *, owner: str
) -> tuple[list[Request], list[tuple[NewJob, ErrorBody]]]:
    """The requests that queue the items that are images, and the failed jobs of those that
    are not."""
    cid = collection.collection_id
    extra = {
        "collection_id": cid,
        "model": collection.model,
        "priority": collection.priority,
        "callback_url": collection.job_callback_url,
    }
    failed: list[tuple[NewJob, ErrorBody]] = []
    requests: list[Request] = []
    for custom_id, file, data, checked in items:
        if isinstance(checked, InvalidRequestError):
            job = NewJob(
                filename=safe_filename(file.filename),
                content_type=file.content_type or "application/octet-stream",
                size_bytes=len(data),
                width=0,
                height=0,
                top_k=collection.top_k,
                custom_id=custom_id,
                # It never runs, so no job webhook: its line in the results tells.
                **{**extra, "callback_url": None},
            )
            failed.append((job, ErrorBody(code=checked.code, message=checked.message)))
            continue
        job = checked.model_copy(update={**extra, "custom_id": custom_id})
        record = Idempotency(custom_id_key(cid, custom_id), item_fingerprint(cid, custom_id))
        trace = tracing.traceparent()
        requests.append(Request([(job, data)], idempotency=record, owner=owner, trace=trace))
    return requests, failed

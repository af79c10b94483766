"""`/api/v1/collections`: many images as one unit. Open one, add images with ids of your own,
close it, watch its counts, read its results as JSONL or CSV from a cursor, cancel it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StringConstraints

from api.collection_items import MAX_CUSTOM_ID_CHARS, Added
from api.deps import CallerDep, CollectionsDep, IdempotencyDep, WaitDep
from api.errors import error_responses
from api.routes import API_PREFIX
from api.upload_form import BatchUploadRoute
from shared.collection_schemas import Collection, CollectionOptions
from shared.schemas import ErrorBody, JobStatus

router = APIRouter(prefix="/collections", tags=["collections"])
# A request of MAX_BATCH_FILES (at most 1024) images may name each one's custom_id in a field.
images_router = APIRouter(
    prefix="/collections",
    tags=["collections"],
    route_class=BatchUploadRoute,
    form_limits={"max_fields": 1024 + 16, "max_part_size": 16 * 1024},
)

MEDIA_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}
MAX_RESULTS_PER_REQUEST = 100_000
# custom_ids one lookup takes.
MAX_LOOKUP = 1024
CustomId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CUSTOM_ID_CHARS)]


@dataclass
class ResultsPage:
    """Which results, and as what."""

    format: Annotated[Literal["jsonl", "csv"], Query(description="jsonl or csv")] = "jsonl"
    cursor: Annotated[
        int, Query(ge=0, description="How many lines you have read (`Next-Cursor`)")
    ] = 0
    limit: Annotated[int, Query(ge=1, le=MAX_RESULTS_PER_REQUEST)] = MAX_RESULTS_PER_REQUEST


class AddedImage(BaseModel):
    custom_id: str
    job_id: str
    status: JobStatus
    error: ErrorBody | None = Field(
        default=None, description="Why the image can never run (not an image, …), if so"
    )
    added: bool = Field(description="Whether this request added it (False: added before)")


class AddedImages(BaseModel):
    """Images of the collection by custom_id, each with its job: those of an add in its order
    (new or found), or those a lookup found."""

    collection_id: str
    images: list[AddedImage]


@router.post(
    "",
    status_code=201,
    response_model=Collection,
    responses=error_responses(400, 409),
)
async def create_collection(
    response: Response,
    collections: CollectionsDep,
    caller: CallerDep,
    idempotency: IdempotencyDep,
    options: Annotated[CollectionOptions | None, Body()] = None,
) -> Collection:
    """Open a collection: every image added to it is classified with these options. With an
    Idempotency-Key, sending the same create again answers the collection made the first time
    (this is how `imgclf submit` resumes)."""
    collection = await collections.create(
        options or CollectionOptions(), owner=caller, idempotency=idempotency
    )
    response.headers["Location"] = f"{API_PREFIX}/collections/{collection.collection_id}"
    return collection


@images_router.post(
    "/{collection_id}/images",
    response_model=AddedImages,
    responses=error_responses(400, 404, 409, 413),
)
async def add_images(
    collection_id: UUID,
    files: Annotated[list[UploadFile], File(description="1 to MAX_BATCH_FILES images")],
    collections: CollectionsDep,
    caller: CallerDep,
    custom_id: Annotated[
        list[str] | None,
        Form(
            description="One per file, in order: the client's own id for each image (a relative "
            "path, say; 1 to 1024 characters, no control characters). Without it, each file's "
            "name is its custom_id"
        ),
    ] = None,
) -> AddedImages:
    """Add images to an open collection; a custom_id added before adds nothing (its job is
    answered), so a request can be sent again safely. A file that is not an image (or too
    large in pixels, or of a format not accepted) becomes a failed job of its own; it never
    fails the request. When the queue is full: 503 with `Retry-After`, the images before the
    limit kept (send the request again)."""
    added = await collections.add(str(collection_id), files, custom_id, owner=caller)
    return AddedImages(collection_id=str(collection_id), images=[_image(one) for one in added])


def _image(one: Added) -> AddedImage:
    job = one.job
    return AddedImage(
        custom_id=one.custom_id, job_id=job.job_id, status=job.status, error=job.error,
        added=one.added,
    )  # fmt: skip


class Lookup(BaseModel):
    custom_ids: list[CustomId] = Field(
        min_length=1, max_length=MAX_LOOKUP, description=f"1 to {MAX_LOOKUP} custom_ids"
    )


@router.post(
    "/{collection_id}/images/lookup", response_model=AddedImages, responses=error_responses(404)
)
async def find_images(
    collection_id: UUID, lookup: Lookup, collections: CollectionsDep, caller: CallerDep
) -> AddedImages:
    """Which of these custom_ids the collection holds, and their jobs (the others are left
    out): a client that resumes an upload sends only the others (`imgclf submit` does)."""
    found = await collections.find(str(collection_id), lookup.custom_ids, owner=caller)
    return AddedImages(collection_id=str(collection_id), images=[_image(one) for one in found])


@router.get("/{collection_id}", response_model=Collection, responses=error_responses(404))
async def get_collection(
    collection_id: UUID, collections: CollectionsDep, caller: CallerDep, wait: WaitDep
) -> Collection:
    """The collection's state and counts; with `wait`, once it is completed, canceled or
    expired, or after `wait` seconds."""
    return await collections.get(str(collection_id), owner=caller, wait=wait)


@router.post("/{collection_id}/close", response_model=Collection, responses=error_responses(404))
async def close_collection(
    collection_id: UUID, collections: CollectionsDep, caller: CallerDep
) -> Collection:
    """Take no more images: the collection completes once every job has ended."""
    return await collections.close(str(collection_id), owner=caller)


@router.delete("/{collection_id}", response_model=Collection, responses=error_responses(404))
async def cancel_collection(
    collection_id: UUID, collections: CollectionsDep, caller: CallerDep
) -> Collection:
    """Cancel every job still queued and take no more images; running jobs finish."""
    return await collections.cancel(str(collection_id), owner=caller)


@router.get(
    "/{collection_id}/results",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One line (JSONL) or row (CSV, after a header row when `cursor` is "
            "0) per ended image, in the order they ended: custom_id, job_id, status, label and "
            "probability (top-1), predictions (top-k; JSON in CSV), error (its code). "
            "`Next-Cursor` is the cursor to ask for next, `Collection-State` the state.",
            "content": {"application/jsonl": {}, "text/csv": {}},
        },
        **error_responses(404),
    },
)
async def collection_results(
    collection_id: UUID,
    collections: CollectionsDep,
    caller: CallerDep,
    page: Annotated[ResultsPage, Depends()],
    wait: WaitDep,
) -> StreamingResponse:
    """The results of the images that have ended, from `cursor` on, streamed. With `wait`, the
    answer comes once there is at least one new line, or the collection is final, or after
    `wait` seconds."""
    cid = str(collection_id)
    collection, stop = await collections.results(
        cid, owner=caller, cursor=page.cursor, limit=page.limit, wait=wait
    )
    lines = collections.lines(cid, page.cursor, stop, as_csv=page.format == "csv")
    headers = {"Next-Cursor": str(stop), "Collection-State": collection.state.value}
    return StreamingResponse(lines, media_type=MEDIA_TYPES[page.format], headers=headers)

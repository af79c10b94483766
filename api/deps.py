"""What routes declare: the app's `JobService` (tests may replace it with
`app.dependency_overrides[get_service]`), the caller (a digest of its API key), and a submit's
options: query parameters whose range is a setting, priority, callback URL, Idempotency-Key."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Annotated, TypedDict, cast

from fastapi import Depends, Header, Query, Request

from api.collections import Collections
from api.security import offered_key
from api.service import JobService
from api.submissions import IdempotentRequest, SubmitOptions
from shared.callbacks import MAX_URL_CHARS
from shared.priorities import DEFAULT_PRIORITY, Priority


class State(TypedDict):
    """What the app's lifespan hands every request (`request.state`)."""

    service: JobService
    collections: Collections


async def get_service(request: Request) -> JobService:
    # `async def`: FastAPI runs a plain `def` dependency in its threadpool, a hop per request.
    return cast(JobService, request.state.service)


ServiceDep = Annotated[JobService, Depends(get_service)]


async def _collections(request: Request) -> Collections:
    return cast(Collections, request.state.collections)


CollectionsDep = Annotated[Collections, Depends(_collections)]


async def _wait(
    service: ServiceDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=300,
            description="Long-poll: return once terminal, or after this many seconds "
            "(at most MAX_WAIT_SECONDS, default 30)",
        ),
    ] = 0,
) -> float:
    return service.checked_wait(wait)


WaitDep = Annotated[float, Depends(_wait)]

TopK = Annotated[
    int | None,
    Query(ge=1, le=1000, description="How many classes to return (default DEFAULT_TOP_K, 5)"),
]


async def _caller(request: Request, service: ServiceDep) -> str:
    """Whose requests these are: a digest of the caller's API key ('' with keys off). Jobs are
    kept, listed and deduplicated per caller."""
    if not service.api_keys:
        return ""
    return hashlib.sha256(offered_key(request.scope["headers"]) or b"").hexdigest()


CallerDep = Annotated[str, Depends(_caller)]


async def _idempotency_key(
    caller: CallerDep,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description="Any unique string per request (a UUID): a retry with the same key and "
            "the same images and options gets the original job(s) back instead of new ones; "
            "the same key with another request is 422, and one still being accepted is 409. "
            "Kept per API key, as long as the jobs",
        ),
    ] = None,
) -> IdempotentRequest | None:
    # Kept per caller: another API key's identical key is another request.
    return None if key is None else IdempotentRequest(key, caller=caller)


IdempotencyDep = Annotated[IdempotentRequest | None, Depends(_idempotency_key)]


CallbackUrl = Annotated[
    str | None,
    Query(
        max_length=MAX_URL_CHARS,
        description="Where to POST the job once it ends: the job's JSON as a Standard Webhooks "
        "delivery (signed with WEBHOOK_SECRET; `webhook-id` is the job id), retried with backoff "
        "on 5xx, 408, 429 and network errors. http(s) only; private, loopback, link-local and "
        "metadata addresses are refused unless CALLBACK_ALLOWED_HOSTS lists the host",
    ),
]


PriorityParam = Annotated[
    Priority,
    Query(description="high, normal or low: every worker takes high jobs before normal ones, "
          "and normal before low (each has a queue of its own)"),
]  # fmt: skip


async def _model(
    service: ServiceDep,
    model: Annotated[
        str | None,
        Query(
            max_length=32,
            description="The model that classifies the images, by name (GET /api/v1/models "
            "lists them); default: the deployment's default model (DEFAULT_MODEL). An unknown "
            "name is 422 `unknown_model`; a model no worker serves right now is accepted and "
            "its jobs wait",
        ),
    ] = None,
) -> str:
    return service.checked_model(model)


ModelDep = Annotated[str, Depends(_model)]


@dataclass(frozen=True, slots=True)
class _Choices:
    """What a submit chooses of its classification: the model, how many classes, the
    priority."""

    model: str
    top_k: int | None
    priority: Priority


async def _choices(
    model: ModelDep, top_k: TopK = None, priority: PriorityParam = DEFAULT_PRIORITY
) -> _Choices:
    return _Choices(model, top_k, priority)


async def _batch_options(
    idempotency: IdempotencyDep,
    caller: CallerDep,
    choices: Annotated[_Choices, Depends(_choices)],
    callback_url: CallbackUrl = None,
) -> SubmitOptions:
    return SubmitOptions(
        top_k=choices.top_k,
        idempotency=idempotency,
        owner=caller,
        callback_url=callback_url,
        priority=choices.priority,
        model=choices.model,
    )


BatchOptionsDep = Annotated[SubmitOptions, Depends(_batch_options)]


async def _submit_options(wait: WaitDep, options: BatchOptionsDep) -> SubmitOptions:
    """A single submit's options: a batch's, and how long to wait for the job."""
    return replace(options, wait=wait)


SubmitOptionsDep = Annotated[SubmitOptions, Depends(_submit_options)]

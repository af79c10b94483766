"""The one dependency routes declare: the app's `JobService` (tests may replace it with
`app.dependency_overrides[get_service]`), and the query parameters whose range is a setting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict, cast

from fastapi import Depends, Query, Request

from api.service import JobService


class State(TypedDict):
    """What the app's lifespan hands every request (`request.state`)."""

    service: JobService


async def get_service(request: Request) -> JobService:
    # `async def`: FastAPI runs a plain `def` dependency in its threadpool, a hop per request.
    return cast(JobService, request.state.service)


ServiceDep = Annotated[JobService, Depends(get_service)]


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


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """A single submission's query parameters."""

    top_k: int | None
    wait: float


async def _submit_options(wait: WaitDep, top_k: TopK = None) -> SubmitOptions:
    return SubmitOptions(top_k=top_k, wait=wait)


SubmitOptionsDep = Annotated[SubmitOptions, Depends(_submit_options)]

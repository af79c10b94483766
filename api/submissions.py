"""What a submission carries besides its files: options, Idempotency-Key, owner; the job store's
request it becomes; what makes two submissions the same request; and whether its callback URL
may be called."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from shared import tracing
from shared.callbacks import destination_problem
from shared.errors import InvalidParameterError
from shared.jobs import Idempotency, Request, idempotency_key
from shared.model_cards import ORIGINAL_MODEL
from shared.priorities import DEFAULT_PRIORITY, Priority
from shared.schemas import NewJob
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """A submit's Idempotency-Key, and whose it is (a digest of the caller's API key)."""

    key: str
    caller: str


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """A submission's options: its query parameters and Idempotency-Key."""

    top_k: int | None = None
    wait: float = 0
    idempotency: IdempotentRequest | None = None
    # Whose jobs these are (a digest of the caller's API key, '' with keys off).
    owner: str = ""
    # Where each finished job is POSTed (a signed webhook), if anywhere.
    callback_url: str | None = None
    priority: Priority = DEFAULT_PRIORITY
    # The model the images run on (checked against MODELS by the dependency that sets it).
    model: str = ORIGINAL_MODEL


def submission(
    jobs: Sequence[NewJob],
    contents: Sequence[bytes],
    *,
    options: SubmitOptions,
    route: str,
    job_ids: Sequence[str] | None,
) -> Request:
    """The job store's request for checked uploads: their options applied, under `job_ids` if
    given, with the Idempotency-Key (and what makes two requests the same) and the submit's
    trace context."""
    extra = {
        "priority": options.priority,
        "callback_url": options.callback_url,
        "model": options.model,
    }
    jobs = [job.model_copy(update=extra) for job in jobs]
    idempotency = None
    if options.idempotency is not None:
        idempotency = Idempotency(
            idempotency_key(options.idempotency.caller, options.idempotency.key),
            fingerprint(route, jobs[0].top_k, jobs, contents),
        )
    return Request(
        list(zip(jobs, contents, strict=True)),
        job_ids or [],
        idempotency,
        owner=options.owner,
        trace=tracing.traceparent(),
    )


def fingerprint(route: str, top_k: int, jobs: Sequence[NewJob], contents: Sequence[bytes]) -> str:
    """What makes two submits the same request: route, options, and each file's name and bytes
    (the jobs carry the callback URL and the model)."""
    callback = jobs[0].callback_url if jobs else None
    priority = jobs[0].priority if jobs else DEFAULT_PRIORITY
    digest = hashlib.sha256(f"{route}\0{top_k}\0{priority}\0{callback or ''}".encode())
    model = jobs[0].model if jobs else ORIGINAL_MODEL
    if model != ORIGINAL_MODEL:  # SqueezeNet's requests keep the fingerprints they had
        digest.update(f"\0model={model}".encode())
    for job, data in zip(jobs, contents, strict=True):
        digest.update(f"\0{job.filename}\0".encode())
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


async def check_callback(url: str, settings: Settings) -> None:
    """422 for a callback that cannot be signed, or whose destination is refused."""
    if settings.webhook_secret is None:
        raise InvalidParameterError("callback_url needs webhooks on: WEBHOOK_SECRET is not set")
    allowed = settings.allowed_callback_hosts()
    if problem := await run_in_threadpool(destination_problem, url, allowed):
        raise InvalidParameterError(problem)

"""What a submission carries besides its files: options, Idempotency-Key, owner; what makes two
submissions the same request; and whether its callback URL may be called."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from shared.callbacks import destination_problem
from shared.errors import InvalidParameterError
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


def fingerprint(route: str, top_k: int, jobs: Sequence[NewJob], contents: Sequence[bytes]) -> str:
    """What makes two submits the same request: route, options, and each file's name and bytes
    (the jobs carry the callback URL)."""
    callback = jobs[0].callback_url if jobs else None
    priority = jobs[0].priority if jobs else DEFAULT_PRIORITY
    digest = hashlib.sha256(f"{route}\0{top_k}\0{priority}\0{callback or ''}".encode())
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

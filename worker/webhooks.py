"""Delivering a finished job's webhook: the job's JSON, POSTed to its callback URL and signed
the Standard Webhooks way (`standardwebhooks`), attempted up to WEBHOOK_MAX_ATTEMPTS times with
exponential backoff and jitter while the receiver fails (5xx, 408, 429, timeouts, connection
errors), never following redirects. Each attempt is recorded on the job (`callback`).

All attempts run inside one task, spaced by sleeps: a Celery countdown would park the message
in the worker past the broker's visibility timeout, and Redis would deliver it twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from shared import tracing
from shared.backoff import Backoff
from shared.callbacks import destination_problem, worth_retrying
from shared.errors import CollectionNotFoundError, JobNotFoundError
from shared.jobs import JobStore, collections
from shared.schemas import CallbackState

log = logging.getLogger(__name__)

# The event type in the payload, as Standard Webhooks payloads carry one.
EVENT_TYPE = "job.finished"
COLLECTION_EVENT_TYPE = "collection.finished"


@dataclass
class Deliverer:
    """Delivers webhooks for jobs in `store`, signed with `signer`."""

    store: JobStore
    signer: Webhook
    http: httpx.Client
    allowed_hosts: frozenset[str]
    max_attempts: int = 5
    backoff: Callable[[], Backoff] = field(default=lambda: Backoff(first=1.0, most=16.0))
    sleep: Callable[[float], None] = time.sleep

    def deliver(self, job_id: str) -> CallbackState | None:
        """Deliver job `job_id`'s webhook; its final state (None: the job has gone)."""
        try:
            job = self.store.get(job_id)
        except JobNotFoundError:
            return None
        if not job.callback_url:
            return None
        payload = json.dumps({"type": EVENT_TYPE, "data": job.model_dump(mode="json")})
        return self._deliver(
            job_id,
            job.callback_url,
            payload,
            lambda state: self.store.record_callback(job_id, state),
        )

    def deliver_collection(self, collection_id: str) -> CallbackState | None:
        """Deliver a done collection's webhook; its final state (None: the collection has
        gone)."""
        try:
            collection = self.store.run(collections.read(collection_id)).collection
        except CollectionNotFoundError:
            return None
        if not collection.callback_url:
            return None
        data = collection.model_dump(mode="json", exclude={"callback"})
        payload = json.dumps({"type": COLLECTION_EVENT_TYPE, "data": data})

        def record(state: CallbackState) -> None:
            self.store.run(collections.record_callback(collection_id, state))

        return self._deliver(collection_id, collection.callback_url, payload, record)

    def _deliver(
        self, webhook_id: str, url: str, payload: str, record: Callable[[CallbackState], object]
    ) -> CallbackState:
        """POST `payload` to `url` until it is taken or the attempts run out, recording each
        attempt's outcome with `record`; `webhook_id` names the delivery (the same on every
        attempt, for the receiver to deduplicate on)."""
        backoff = self.backoff()
        state = CallbackState(status="pending")
        for attempt in range(1, self.max_attempts + 1):
            outcome = self._attempt(webhook_id, url, payload)
            retry = not isinstance(outcome, str) and worth_retrying(outcome)
            if isinstance(outcome, httpx.Response) and outcome.is_success:
                state = CallbackState(
                    status="delivered", attempts=attempt, delivered_at=datetime.now(UTC)
                )
                break
            last = outcome if isinstance(outcome, str) else _describe(outcome)
            final = not retry or attempt == self.max_attempts
            state = CallbackState(
                status="failed" if final else "retrying", attempts=attempt, last_error=last
            )
            record(state)
            if final:
                log.warning("webhook %s failed after %d attempt(s): %s", webhook_id, attempt, last)
                return state
            self.sleep(backoff.next_delay())
        record(state)
        return state

    def _attempt(self, job_id: str, url: str, payload: str) -> httpx.Response | Exception | str:
        """One POST; a string where the destination was refused before sending."""
        if problem := destination_problem(url, self.allowed_hosts):
            return problem
        with tracing.span("webhook attempt", job_id) as span:
            timestamp = datetime.now(UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": job_id,
                "webhook-timestamp": str(int(timestamp.timestamp())),
                "webhook-signature": self.signer.sign(job_id, timestamp, payload),
                # A receiver that traces continues the job's trace.
                **tracing.message_headers(),
            }
            try:
                response = self.http.post(url, content=payload.encode(), headers=headers)
            except httpx.HTTPError as exc:
                return exc
            span.set_attribute("http.response.status_code", response.status_code)
            return response


def _describe(outcome: httpx.Response | Exception) -> str:
    if isinstance(outcome, httpx.Response):
        return f"HTTP {outcome.status_code}"
    return f"{type(outcome).__name__}: {outcome}"[:300]

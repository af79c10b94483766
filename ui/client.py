"""The one way the UI and the CLI talk to imgclf: its HTTP API."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from shared.backoff import Backoff
from shared.schemas import Job

DEFAULT_TIMEOUT_SECONDS = 30.0
# A submit is sent at most this many times while the API cannot be reached, answers 5xx, or
# says the same request is still being accepted (409).
SUBMIT_ATTEMPTS = 4


class ApiError(Exception):
    """The API answered with an error; `code` and `message` are its own words."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.message = message
        # The seconds a 503's Retry-After asks for, if it said.
        self.retry_after = retry_after


class ApiUnavailableError(ApiError):
    """The API could not be reached at all, or it answered 5xx."""


@dataclass(frozen=True, slots=True)
class Upload:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Results:
    """A page of a collection's results: its rows, the cursor past them, the state then."""

    rows: list[dict[str, Any]]
    next_cursor: int
    state: str


class ApiClient:
    """A small, typed client over httpx; every failure becomes an `ApiError`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        upload: Upload,
        *,
        top_k: int | None = None,
        callback_url: str | None = None,
        priority: str | None = None,
        model: str | None = None,
    ) -> Job:
        """Queue one image; `top_k` None leaves the number of classes to the API's default,
        `model` None the model to the API's default, and `callback_url` asks for a signed
        webhook once the job ends.

        The request carries an Idempotency-Key of its own, so that it can be sent again when
        the network drops it or the API is briefly unavailable: the API answers a repeat with
        the job the first one made, never a second job.
        """
        files = {"file": (upload.filename, upload.data, upload.content_type)}
        params: dict[str, str | int] = {"top_k": top_k} if top_k is not None else {}
        if callback_url is not None:
            params["callback_url"] = callback_url
        if priority is not None:
            params["priority"] = priority
        if model is not None:
            params["model"] = model
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        backoff = Backoff(first=0.5, most=4.0)
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                body = self._request(
                    "POST", "/api/v1/jobs", files=files, params=params, headers=headers
                )
                return Job.model_validate(body)
            except ApiError as exc:
                retryable = isinstance(exc, ApiUnavailableError) or exc.status == 409
                if not retryable or attempt == SUBMIT_ATTEMPTS:
                    raise
                time.sleep(backoff.next_delay())
        raise AssertionError("unreachable")

    def job(self, job_id: str, *, wait: float = 0) -> Job:
        """A job; with `wait`, long-poll until it ends or `wait` seconds pass."""
        params = {"wait": wait} if wait else None
        body = self._request(
            "GET", f"/api/v1/jobs/{job_id}", params=params, timeout=DEFAULT_TIMEOUT_SECONDS + wait
        )
        return Job.model_validate(body)

    def retry(self, job_id: str) -> Job:
        """A new job for a failed or canceled job's image (`retry_of` names the old one)."""
        return Job.model_validate(self._request("POST", f"/api/v1/jobs/{job_id}/retry"))

    def cancel(self, job_id: str) -> Job:
        return Job.model_validate(self._request("DELETE", f"/api/v1/jobs/{job_id}"))

    def create_collection(
        self, options: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Open a collection; with `idempotency_key`, the one that key opened before, if any."""
        if idempotency_key is None:
            return self._request("POST", "/api/v1/collections", json=dict(options))
        headers = {"Idempotency-Key": idempotency_key}
        return self._again("POST", "/api/v1/collections", json=dict(options), headers=headers)

    def collection(self, collection_id: str, *, wait: float = 0) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        return self._again(
            "GET",
            f"/api/v1/collections/{collection_id}",
            params=params,
            timeout=DEFAULT_TIMEOUT_SECONDS + wait,
        )

    def add_images(
        self, collection_id: str, uploads: Sequence[tuple[str, Upload]]
    ) -> dict[str, Any]:
        """Add images, each under its custom_id. Safe to send again (a custom_id is added once),
        so it is: while the queue is full, after the Retry-After the API asks for, for as long
        as it takes; while the API is unreachable or unavailable, up to SUBMIT_ATTEMPTS times."""
        files = [("files", (u.filename, u.data, u.content_type)) for _, u in uploads]
        data = {"custom_id": [custom_id for custom_id, _ in uploads]}
        path = f"/api/v1/collections/{collection_id}/images"
        return self._again("POST", path, files=files, data=data)

    def known_images(self, collection_id: str, custom_ids: Sequence[str]) -> set[str]:
        """Those of `custom_ids` the collection holds already."""
        found = self._again(
            "POST",
            f"/api/v1/collections/{collection_id}/images/lookup",
            json={"custom_ids": list(custom_ids)},
        )
        return {image["custom_id"] for image in found["images"]}

    def close_collection(self, collection_id: str) -> dict[str, Any]:
        return self._again("POST", f"/api/v1/collections/{collection_id}/close")

    def cancel_collection(self, collection_id: str) -> dict[str, Any]:
        return self._request("DELETE", f"/api/v1/collections/{collection_id}")

    def collection_results(
        self, collection_id: str, *, cursor: int = 0, wait: float = 0, limit: int = 1000
    ) -> Results:
        """Result rows from `cursor` on (at most `limit`); with `wait`, long-poll for one."""
        response = self._sent_again(
            "GET",
            f"/api/v1/collections/{collection_id}/results",
            params={"cursor": cursor, "wait": wait, "limit": limit},
            timeout=DEFAULT_TIMEOUT_SECONDS + wait,
        )
        rows = [json.loads(line) for line in response.text.splitlines()]
        return Results(
            rows, int(response.headers["next-cursor"]), response.headers["collection-state"]
        )

    def model_info(self, model: str | None = None) -> dict[str, Any]:
        params = {"model": model} if model else None
        return self._request("GET", "/api/v1/model-info", params=params)

    def models(self) -> dict[str, Any]:
        """The models the deployment serves, their cards and live workers."""
        return self._request("GET", "/api/v1/models")

    def queue(self) -> dict[str, Any]:
        return self._request("GET", "/api/v1/queue")

    def limits(self) -> dict[str, Any]:
        """What the API accepts: upload size, formats and file name endings, batch size."""
        return self._request("GET", "/api/v1/limits")

    def metrics_text(self) -> str:
        response = self._send("GET", "/metrics")
        return response.text

    def _again(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._sent_again(method, path, **kwargs).json()
        return body

    def _sent_again(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request that is safe to send again, sent again: while the queue is full, after the
        Retry-After the API asks for, for as long as it takes; while the API is unreachable or
        unavailable, up to SUBMIT_ATTEMPTS times in all."""
        backoff = Backoff(first=0.5, most=4.0)
        failures = 0
        while True:
            try:
                return self._send(method, path, **kwargs)
            except ApiUnavailableError as exc:
                if exc.code != "queue_full":
                    failures += 1
                    if failures == SUBMIT_ATTEMPTS:
                        raise
                time.sleep(exc.retry_after or backoff.next_delay())

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        body: dict[str, Any] = response.json()
        return body

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnavailableError(
                0, "unreachable", f"The imgclf API at {self.base_url} is not reachable ({exc})"
            ) from exc
        if response.is_success:
            return response
        code, message = _error_fields(response)
        error = ApiUnavailableError if response.status_code >= 500 else ApiError
        retry_after = response.headers.get("retry-after", "")
        wait = float(retry_after) if retry_after.isdigit() else None
        raise error(response.status_code, code, message, retry_after=wait)


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "http_error", response.text[:200] or response.reason_phrase
    if isinstance(body, Mapping):
        return str(body.get("code", "http_error")), str(
            body.get("message") or body.get("detail") or response.reason_phrase
        )
    return "http_error", response.reason_phrase

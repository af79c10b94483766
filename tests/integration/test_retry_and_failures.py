"""Failed jobs: listed to the API key that submitted them and to no other, and retried as new
jobs linked to the old ones. Real API, Redis and worker."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

from api.main import create_app
from shared.settings import Settings
from tests.conftest import Stack
from tests.images import encode, gradient

pytestmark = pytest.mark.integration

KEYS = {"a": {"X-API-Key": "key-a"}, "b": {"X-API-Key": "key-b"}}


def _corrupt_jpeg() -> bytes:
    """Passes the API's header check; the worker's full decode fails (`invalid_image`)."""
    jpeg = encode(gradient(), "JPEG")
    return jpeg[:300] + b"\0" * 300 + jpeg[-2:]


def _failed_job(client: TestClient, who: str) -> dict:
    headers = KEYS[who]
    files = {"file": (f"{who}.jpg", _corrupt_jpeg(), "image/jpeg")}
    job = client.post("/api/v1/jobs", params={"wait": 20}, files=files, headers=headers).json()
    assert job["status"] == "failed", job
    return job


def test_failures_are_listed_per_key_and_a_retry_makes_a_linked_job(
    stack: Stack, labrador_bytes: bytes
) -> None:
    settings = Settings(redis_url=stack.redis.url, api_keys="key-a,key-b")
    with TestClient(create_app(settings)) as client:
        a, b = _failed_job(client, "a"), _failed_job(client, "b")
        listed = {
            who: [j["job_id"] for j in client.get(
                "/api/v1/jobs", params={"status": "failed", "limit": 100}, headers=KEYS[who]
            ).json()["jobs"]]
            for who in KEYS
        }  # fmt: skip
        assert a["job_id"] in listed["a"]
        assert b["job_id"] not in listed["a"]
        assert b["job_id"] in listed["b"]
        assert a["job_id"] not in listed["b"]

        retried = client.post(f"/api/v1/jobs/{a['job_id']}/retry", headers=KEYS["a"])
        assert retried.status_code == 202, retried.text
        again = retried.json()
        assert again["retry_of"] == a["job_id"]
        assert again["job_id"] != a["job_id"]
        assert retried.headers["Location"] == f"/api/v1/jobs/{again['job_id']}"
        assert (again["filename"], again["size_bytes"]) == (a["filename"], a["size_bytes"])
        done = client.get(f"/api/v1/jobs/{again['job_id']}", params={"wait": 20}, headers=KEYS["a"])
        assert done.json()["status"] == "failed"  # the same broken image, run again
        newest = client.get("/api/v1/jobs", params={"status": "failed"}, headers=KEYS["a"])
        assert newest.json()["jobs"][0]["job_id"] == again["job_id"]

        ok = client.post("/api/v1/jobs", params={"wait": 20}, headers=KEYS["a"],
                         files={"file": ("d.jpg", labrador_bytes, "image/jpeg")}).json()  # fmt: skip
        refused = client.post(f"/api/v1/jobs/{ok['job_id']}/retry", headers=KEYS["a"])
        assert refused.status_code == 409
        assert refused.json()["code"] == "job_not_retryable"
        # A job that does not exist (editing the id's last digit made the same id 1 time in 16).
        unknown = client.post(f"/api/v1/jobs/{uuid.uuid4()}/retry", headers=KEYS["a"])
        assert unknown.status_code == 404


def test_listing_is_off_without_api_keys_unless_opened(stack: Stack) -> None:
    with TestClient(create_app(Settings(redis_url=stack.redis.url))) as client:
        closed = client.get("/api/v1/jobs", params={"status": "failed"})
        assert closed.status_code == 403
        assert closed.json()["code"] == "forbidden"
        assert client.get("/api/v1/jobs", params={"status": "running"}).status_code == 422
    opened = Settings(redis_url=stack.redis.url, job_listing_open=True)
    with TestClient(create_app(opened)) as client:
        assert client.get("/api/v1/jobs", params={"status": "failed"}).status_code == 200

"""`Idempotency-Key` on submits (the IETF httpapi draft's semantics): a retry gets the original
job, a key reused for another request is 422, one still being accepted is 409, and keys are kept
per API key. Real API, Redis and worker."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api.main import create_app
from shared.settings import Settings
from tests.conftest import Stack
from tests.images import encode, gradient
from tests.processes import RedisServer, wait_until

pytestmark = pytest.mark.integration


def _post(http: httpx.Client, key: str, image: bytes, **params: object) -> httpx.Response:
    return http.post(
        "/api/v1/jobs",
        params=params,
        headers={"Idempotency-Key": key},
        files={"file": ("d.jpg", image, "image/jpeg")},
    )


def test_concurrent_posts_with_one_key_make_one_job(stack: Stack, labrador_bytes: bytes) -> None:
    key = str(uuid.uuid4())
    limits = httpx.Limits(max_connections=8)
    with httpx.Client(base_url=stack.api_url, timeout=30, limits=limits) as http:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _post(http, key, labrador_bytes), range(8)))
        # One was accepted; the others got it back, or were told it was still being accepted.
        assert {a.status_code for a in answers} <= {200, 202, 409}, [a.text for a in answers]
        ids = {a.json()["job_id"] for a in answers if a.is_success}
        assert len(ids) == 1
        (job_id,) = ids
        again = _post(http, key, labrador_bytes, wait=20)
        assert again.status_code == 200
        assert again.json()["job_id"] == job_id
        assert again.json()["status"] == "succeeded"
    client = stack.redis.client()
    made = [k for k in client.scan_iter("imgclf:job:*") if client.hget(k, "filename") == b"d.jpg"]
    assert sum(k.decode().endswith(job_id) for k in made) == 1


def test_a_key_reused_for_other_images_or_options_is_422(
    api: httpx.Client, labrador_bytes: bytes
) -> None:
    key = str(uuid.uuid4())
    first = _post(api, key, labrador_bytes)
    assert first.status_code == 202
    for other in (
        _post(api, key, encode(gradient(), "JPEG")),
        _post(api, key, labrador_bytes, top_k=3),
    ):
        assert other.status_code == 422, other.text
        assert other.json()["code"] == "idempotency_key_reused"
    assert _post(api, key, labrador_bytes).json()["job_id"] == first.json()["job_id"]


def test_a_batch_retried_with_its_key_gets_the_same_jobs(api: httpx.Client) -> None:
    files = [
        ("files", (f"{i}.png", encode(gradient(40 + i, 30), "PNG"), "image/png")) for i in range(3)
    ]
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post("/api/v1/jobs/batch", files=files, headers=headers)
    again = api.post("/api/v1/jobs/batch", files=files, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert [j["job_id"] for j in again.json()["jobs"]] == [
        j["job_id"] for j in first.json()["jobs"]
    ]


def test_keys_are_kept_per_api_key(redis_server: RedisServer, labrador_bytes: bytes) -> None:
    settings = Settings(redis_url=redis_server.url, api_keys="key-a,key-b")
    key = str(uuid.uuid4())
    with TestClient(create_app(settings)) as client:
        ids = []
        for api_key in ("key-a", "key-b", "key-a"):
            answer = client.post(
                "/api/v1/jobs",
                headers={"X-API-Key": api_key, "Idempotency-Key": key},
                files={"file": ("d.jpg", labrador_bytes, "image/jpeg")},
            )
            assert answer.is_success  # 202, or 200 once the job it replays has finished
            ids.append(answer.json()["job_id"])
    assert ids[0] == ids[2] != ids[1]


def test_a_duplicate_during_acceptance_is_409_and_a_refused_submit_keeps_no_key(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    """With submits waiting for a replica that never answers, the first request holds its key
    `pending` for REDIS_WAIT_TIMEOUT_MS: a duplicate meanwhile, at another API process, is 409;
    the first ends 503, its job and its key withdrawn, so a later retry is a fresh attempt. (At
    the same process the duplicate waits its turn behind the first, and gets its outcome.)"""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        settings = Settings(redis_url=redis.url, redis_wait_replicas=1, redis_wait_timeout_ms=1500)
        key = str(uuid.uuid4())
        with (
            TestClient(create_app(settings), raise_server_exceptions=False) as client,
            TestClient(create_app(settings), raise_server_exceptions=False) as other,
        ):
            first: list[httpx.Response] = []
            thread = threading.Thread(
                target=lambda: first.append(_post(client, key, labrador_bytes))
            )
            thread.start()
            client_redis = redis.client()
            # The duplicate goes only once the first holds its key (pending), however slow the
            # machine: sent before, it would be the first itself.
            wait_until(
                lambda: bool(client_redis.keys("imgclf:idempotency:*")), timeout=10, what="key"
            )
            duplicate = _post(other, key, labrador_bytes)
            thread.join(10)
            assert duplicate.status_code == 409, duplicate.text
            assert duplicate.json()["code"] == "idempotency_in_progress"
            assert first[0].status_code == 503
            assert client_redis.keys("imgclf:idempotency:*") == []
            assert client_redis.keys("imgclf:job:*") == []
    finally:
        redis.stop()


def test_the_key_is_in_the_openapi_document(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/jobs", "/api/v1/jobs/batch"):
        names = {p["name"] for p in paths[path]["post"]["parameters"]}
        assert "Idempotency-Key" in names
        assert "409" in paths[path]["post"]["responses"]

"""The settings given to `create_app` are the ones every part of the app uses (not the
process's environment): keys, `Retry-After`, wait and batch limits."""

from __future__ import annotations

import os
import uuid

import pytest
from PIL import Image
from starlette.testclient import TestClient

from api.main import create_app
from scripts.processes import free_port
from shared.settings import Settings
from tests.images import encode
from tests.processes import RedisServer

pytestmark = pytest.mark.integration


def test_injected_settings_decide_keys_retry_after_and_limits() -> None:
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens: Redis is down
        api_keys="injected-key",
        retry_after_seconds=7,
        max_wait_seconds=3,
        max_batch_files=2,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/queue").status_code == 401
        keyed = {"X-API-Key": "injected-key"}
        down = client.get("/api/v1/queue", headers=keyed)
        assert (down.status_code, down.headers["retry-after"]) == (503, "7")
        assert down.json()["code"] == "store_unavailable"
        job = f"/api/v1/jobs/{uuid.uuid4()}"
        too_long = client.get(job, params={"wait": 4}, headers=keyed)
        assert too_long.status_code == 422
        assert too_long.json()["code"] == "validation_error"
        files = [("files", (f"{i}.png", b"x", "image/png")) for i in range(3)]
        batch = client.post("/api/v1/jobs/batch", files=files, headers=keyed)
        assert batch.status_code == 400
        assert "1 to 2" in batch.json()["message"]


def test_a_check_that_runs_out_of_time_refuses_the_upload(redis_server: RedisServer) -> None:
    """UPLOAD_CHECK_TIMEOUT_SECONDS bounds the threadpool check of an upload: past it, a 413
    that says why, and the API answers on."""
    settings = Settings(redis_url=redis_server.url, upload_check_timeout_seconds=0.000001)
    noise = Image.frombytes("RGB", (600, 600), os.urandom(600 * 600 * 3))
    photo = encode(noise, "PNG")  # ~1 MB, over the inline size: checked in a thread
    with TestClient(create_app(settings)) as client:
        answer = client.post("/api/v1/jobs", files={"file": ("g.png", photo, "image/png")})
        assert answer.status_code == 413, answer.text
        assert answer.json()["code"] == "image_too_large"
        assert "UPLOAD_CHECK_TIMEOUT_SECONDS" in answer.json()["message"]
        assert client.get("/health").status_code == 200

"""Webhooks: each finished job with a `callback_url` is POSTed, signed the Standard Webhooks way,
to a real HTTP receiver started by the test, by a real webhook node; failures are retried with
backoff, and destinations inside the network are refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from api.main import create_app
from scripts.processes import free_port
from shared.settings import Settings
from tests.conftest import Stack
from tests.images import encode, gradient
from tests.processes import (
    RedisServer,
    api_server,
    running,
    service_env,
    wait_until,
    webhook_node_command,
)
from tests.receivers import Receiver

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


@pytest.fixture(scope="module")
def client(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API (in this process) and a webhook node (a real Celery worker process) on the
    stack's Redis; the stack's classify worker runs the jobs."""
    hooks = {"WEBHOOK_SECRET": SECRET, "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
             "WEBHOOK_MAX_ATTEMPTS": "3"}  # fmt: skip
    node = webhook_node_command()
    log = tmp_path_factory.mktemp("webhooks") / "webhooks.log"
    settings = Settings(
        redis_url=stack.redis.url, webhook_secret=SECRET, callback_allowed_hosts="127.0.0.1"
    )
    with (
        running(node, env=service_env(stack.redis.url, **hooks), log=log),
        TestClient(create_app(settings)) as api,
    ):
        yield api


def _submit(client: TestClient, image: bytes, callback_url: str) -> httpx.Response:
    return client.post(
        "/api/v1/jobs",
        params={"callback_url": callback_url},
        files={"file": ("d.jpg", image, "image/jpeg")},
    )


def _callback_settled(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if (job.get("callback") or {}).get("status") in ("delivered", "failed"):
            return job
        time.sleep(0.2)
    pytest.fail(f"webhook of {job_id} not settled: {job}")


def test_each_job_is_posted_once_signed(
    client: TestClient, receiver: Receiver, labrador_bytes: bytes
) -> None:
    job_id = _submit(client, labrador_bytes, receiver.url).json()["job_id"]
    job = _callback_settled(client, job_id)
    assert job["status"] == "succeeded"
    assert (job["callback"]["status"], job["callback"]["attempts"]) == ("delivered", 1)
    assert job["callback"]["delivered_at"]
    ((headers, body),) = receiver.received
    event = Webhook(SECRET).verify(body, headers)  # raises on a bad signature
    assert event["type"] == "job.finished"
    assert event["data"]["job_id"] == job_id
    assert event["data"]["result"]["predictions"][0]["label"] == "Labrador retriever"
    assert headers["webhook-id"] == job_id
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(body, headers)


def test_a_collection_is_posted_once_when_its_last_job_ends_after_it_closed(
    client: TestClient, receiver: Receiver, labrador_bytes: bytes
) -> None:
    """Each job's webhook goes to one receiver, the collection's to another: that one once,
    only when the collection is closed and its every job has ended."""
    jobs_receiver = Receiver()
    options = {"callback_url": receiver.url, "job_callback_url": jobs_receiver.url}
    cid = client.post("/api/v1/collections", json=options).json()["collection_id"]
    files = [("files", ("a.jpg", labrador_bytes, "image/jpeg")),
             ("files", ("b.jpg", b"not an image", "image/jpeg"))]  # fmt: skip
    assert client.post(f"/api/v1/collections/{cid}/images", files=files).status_code == 200
    # Both jobs end while it is open: it is not done, so no webhook yet.
    wait_until(lambda: len(jobs_receiver.received) == 1, timeout=60, what="the job's webhook")
    assert client.get(f"/api/v1/collections/{cid}").json()["counts"]["succeeded"] == 1
    assert receiver.received == []
    client.post(f"/api/v1/collections/{cid}/close")

    def settled() -> bool:
        callback = client.get(f"/api/v1/collections/{cid}").json()["callback"] or {}
        return callback.get("status") == "delivered"

    wait_until(settled, timeout=60, what="the collection's webhook")
    client.post(f"/api/v1/collections/{cid}/close")  # closed again: nothing more is sent
    ((headers, body),) = receiver.received
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "collection.finished"
    assert headers["webhook-id"] == cid
    data = event["data"]
    assert (data["collection_id"], data["state"]) == (cid, "completed")
    assert (data["counts"]["succeeded"], data["counts"]["failed"]) == (1, 1)
    jobs_receiver.close()
    # Only the image that ran had a job's webhook: the file that is not an image failed on
    # arrival, before any job ran, and is in the collection's results only.
    assert len(jobs_receiver.received) == 1


def test_a_failing_receiver_gets_attempts_until_it_answers(
    client: TestClient, receiver: Receiver, labrador_bytes: bytes
) -> None:
    receiver.answers = [500, 503]
    job_id = _submit(client, labrador_bytes, receiver.url).json()["job_id"]
    job = _callback_settled(client, job_id)
    assert (job["callback"]["status"], job["callback"]["attempts"]) == ("delivered", 3)
    assert len(receiver.received) == 3
    assert {h["webhook-id"] for h, _ in receiver.received} == {job_id}  # one id for all


def test_a_receiver_down_for_good_fails_the_callback_not_the_job(
    client: TestClient, labrador_bytes: bytes
) -> None:
    down = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens
    job_id = _submit(client, labrador_bytes, down).json()["job_id"]
    job = _callback_settled(client, job_id)
    assert job["status"] == "succeeded"
    assert (job["callback"]["status"], job["callback"]["attempts"]) == ("failed", 3)
    assert "ConnectError" in job["callback"]["last_error"]


def test_a_4xx_other_than_408_and_429_is_not_retried(
    client: TestClient, receiver: Receiver, labrador_bytes: bytes
) -> None:
    receiver.answers = [410]
    job_id = _submit(client, labrador_bytes, receiver.url).json()["job_id"]
    job = _callback_settled(client, job_id)
    assert (job["callback"]["status"], job["callback"]["attempts"]) == ("failed", 1)
    assert job["callback"]["last_error"] == "HTTP 410"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
        "http://10.0.0.1/hooks",
        "http://[::1]:8080/hooks",
        "ftp://example.com/hooks",
        "http://user:pw@example.com/hooks",
    ],
)
def test_destinations_inside_the_network_are_refused(
    client: TestClient, labrador_bytes: bytes, url: str
) -> None:
    answer = _submit(client, labrador_bytes, url)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"


def test_without_a_secret_callbacks_are_refused(stack: Stack, labrador_bytes: bytes) -> None:
    with TestClient(create_app(Settings(redis_url=stack.redis.url))) as api:
        answer = _submit(api, labrador_bytes, "http://example.com/hooks")
    assert answer.status_code == 422
    assert "WEBHOOK_SECRET" in answer.json()["message"]


def test_a_canceled_job_is_posted_too(tmp_path: Path, receiver: Receiver) -> None:
    """No worker runs here: the job stays queued until canceled, and the cancel queues its
    webhook in the same step (delivered by a webhook node of this test's own)."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        env = service_env(redis.url, WEBHOOK_SECRET=SECRET, CALLBACK_ALLOWED_HOSTS="127.0.0.1")
        node = webhook_node_command(hostname="hooks2")
        settings = Settings(
            redis_url=redis.url, webhook_secret=SECRET, callback_allowed_hosts="127.0.0.1"
        )
        with (
            running(node, env=env, log=tmp_path / "webhooks.log"),
            TestClient(create_app(settings)) as api,
        ):
            job_id = _submit(api, encode(gradient(), "JPEG"), receiver.url).json()["job_id"]
            assert api.delete(f"/api/v1/jobs/{job_id}").json()["status"] == "canceled"
            job = _callback_settled(api, job_id)
        assert job["callback"]["status"] == "delivered"
        event = json.loads(receiver.received[0][1])
        assert event["data"]["status"] == "canceled"
    finally:
        redis.stop()


def test_the_cli_asks_for_a_webhook(
    client: TestClient, stack: Stack, receiver: Receiver, tmp_path: Path, labrador_bytes: bytes
) -> None:
    """`imgclf submit --callback-url`: against a real API process with webhooks on."""
    photo = tmp_path / "cli.jpg"
    photo.write_bytes(labrador_bytes)
    env = service_env(stack.redis.url, WEBHOOK_SECRET=SECRET, CALLBACK_ALLOWED_HOSTS="127.0.0.1")
    with api_server(env, tmp_path / "api.log") as api:
        result = subprocess.run(
            [sys.executable, "-m", "ui.cli", "submit", "--json", str(photo),
             "--callback-url", receiver.url, "--api-url", api],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (row,) = (json.loads(line) for line in result.stdout.splitlines())
        settled = _callback_settled(client, row["job_id"])
        assert settled["callback_url"] == receiver.url
    assert settled["callback"]["status"] == "delivered"

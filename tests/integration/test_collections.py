"""Collections against real Redis and workers: the life of one, its results as JSONL and CSV,
custom_ids added once, and what a client meets without workers (a full queue, a cap, cancel,
another API key)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from api.main import create_app
from shared.jobs import image_key, scripts
from shared.settings import Settings
from tests.processes import RedisServer

pytestmark = pytest.mark.integration

COLLECTIONS = "/api/v1/collections"


def _open(client: httpx.Client | TestClient, **options: Any) -> dict[str, Any]:
    response = client.post(COLLECTIONS, json=options)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{COLLECTIONS}/{response.json()['collection_id']}"
    return dict(response.json())


def _add(
    client: httpx.Client | TestClient,
    collection_id: str,
    files: list[tuple[str, bytes]],
    custom_ids: list[str] | None = None,
) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    data = {"custom_id": custom_ids} if custom_ids is not None else None
    return client.post(f"{COLLECTIONS}/{collection_id}/images", files=parts, data=data)


def test_a_collection_from_open_to_its_results(api: TestClient, labrador_bytes: bytes) -> None:
    collection = _open(api, top_k=3)
    assert (collection["state"], collection["top_k"], collection["model"]) == (
        "open",
        3,
        "squeezenet",
    )
    cid = collection["collection_id"]
    added = _add(
        api,
        cid,
        [("dogs/labrador.jpg", labrador_bytes), ("x.jpg", labrador_bytes), ("n.txt", b"notes")],
        custom_ids=["dogs/labrador.jpg", "dogs/again.jpg", "notes/readme.txt"],
    )
    assert added.status_code == 200, added.text
    images = added.json()["images"]
    assert [(i["custom_id"], i["added"]) for i in images] == [
        ("dogs/labrador.jpg", True),
        ("dogs/again.jpg", True),
        ("notes/readme.txt", True),
    ]
    assert images[2]["status"] == "failed"
    assert images[2]["error"]["code"] == "invalid_image"

    # A lookup answers the custom_ids it holds; a resumed upload sends only the others.
    lookup = api.post(f"{COLLECTIONS}/{cid}/images/lookup",
                      json={"custom_ids": ["dogs/labrador.jpg", "dogs/unknown.jpg"]})  # fmt: skip
    (held,) = lookup.json()["images"]
    assert (held["custom_id"], held["job_id"]) == ("dogs/labrador.jpg", images[0]["job_id"])

    # The same request again (a retry, a resumed upload) adds nothing.
    again = _add(api, cid, [("dogs/labrador.jpg", labrador_bytes)])
    (found,) = again.json()["images"]
    assert (found["job_id"], found["added"]) == (images[0]["job_id"], False)

    closed = api.post(f"{COLLECTIONS}/{cid}/close").json()
    assert closed["state"] in ("running", "completed")
    done = api.get(f"{COLLECTIONS}/{cid}", params={"wait": 30}).json()
    assert done["state"] == "completed"
    assert done["counts"] == {
        "total": 3,
        "queued": 0,
        "running": 0,
        "succeeded": 2,
        "failed": 1,
        "canceled": 0,
    }
    assert _add(api, cid, [("late.jpg", labrador_bytes)]).json()["code"] == "collection_closed"

    results = api.get(f"{COLLECTIONS}/{cid}/results")
    assert results.headers["content-type"] == "application/jsonl"
    assert (results.headers["next-cursor"], results.headers["collection-state"]) == (
        "3",
        "completed",
    )
    rows = {row["custom_id"]: row for row in map(json.loads, results.text.splitlines())}
    assert set(rows) == {"dogs/labrador.jpg", "dogs/again.jpg", "notes/readme.txt"}
    dog = rows["dogs/labrador.jpg"]
    assert (dog["job_id"], dog["status"], dog["label"]) == (
        images[0]["job_id"],
        "succeeded",
        "Labrador retriever",
    )
    assert dog["probability"] == dog["predictions"][0]["probability"]
    assert len(dog["predictions"]) == 3
    assert dog["error"] is None
    readme = rows["notes/readme.txt"]
    assert (readme["status"], readme["label"], readme["error"]) == ("failed", None, "invalid_image")

    as_csv = api.get(f"{COLLECTIONS}/{cid}/results", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [row["custom_id"] for row in table] == list(rows)
    first = table[0]
    assert json.loads(first["predictions"]) == rows[first["custom_id"]]["predictions"]

    # A cursor reads only what is new; a CSV page after the first has no header.
    page = api.get(f"{COLLECTIONS}/{cid}/results", params={"cursor": 1, "format": "csv"})
    assert len(list(csv.reader(io.StringIO(page.text)))) == 2
    assert page.headers["next-cursor"] == "3"
    assert api.get(f"{COLLECTIONS}/{cid}/results", params={"cursor": 3}).text == ""

    job = api.get(f"/api/v1/jobs/{images[0]['job_id']}").json()
    assert (job["collection_id"], job["custom_id"]) == (cid, "dogs/labrador.jpg")


def test_custom_ids_are_checked(api: TestClient, labrador_bytes: bytes) -> None:
    cid = _open(api)["collection_id"]
    for custom_id in ("a\nb.jpg", "x" * 1025, ""):
        refused = _add(api, cid, [("a.jpg", labrador_bytes)], custom_ids=[custom_id])
        assert refused.status_code == 422, custom_id
        assert refused.json()["code"] == "invalid_custom_id"
    two = _add(api, cid, [("a.jpg", labrador_bytes), ("b.jpg", labrador_bytes)], ["only-one"])
    assert two.json()["code"] == "invalid_custom_id"
    assert api.get(f"{COLLECTIONS}/{cid}").json()["counts"]["total"] == 0
    missing = api.get(f"{COLLECTIONS}/00000000-0000-4000-8000-000000000000")
    assert (missing.status_code, missing.json()["code"]) == (404, "collection_not_found")


@pytest.fixture
def idle_redis(tmp_path: Path) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def idle(idle_redis: RedisServer) -> Iterator[Callable[..., TestClient]]:
    """In-process APIs on a Redis of their own that no worker consumes: jobs stay queued."""
    with ExitStack() as stack:

        def api(**settings: Any) -> TestClient:
            app = create_app(Settings(redis_url=idle_redis.url, **settings))
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield api


def test_a_full_queue_keeps_what_fits_and_a_resend_adds_the_rest(
    idle: Callable[..., TestClient], labrador_bytes: bytes
) -> None:
    small = idle(max_queue_length=2, retry_after_seconds=7)
    cid = _open(small)["collection_id"]
    files = [(f"{n}.jpg", labrador_bytes) for n in range(3)]
    full = _add(small, cid, files)
    assert (full.status_code, full.headers["retry-after"]) == (503, "7")
    assert full.json()["code"] == "queue_full"
    assert small.get(f"{COLLECTIONS}/{cid}").json()["counts"]["queued"] == 2
    canceled = small.delete(f"{COLLECTIONS}/{cid}").json()
    assert canceled["state"] == "canceled"
    assert canceled["counts"]["canceled"] == 2
    assert canceled["counts"]["queued"] == 0
    assert _add(small, cid, files).json()["code"] == "collection_closed"
    # A canceled job of it retried is a job of its own: the collection keeps its counts.
    lines = small.get(f"{COLLECTIONS}/{cid}/results").text.splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["canceled", "canceled"]
    retried = small.post(f"/api/v1/jobs/{json.loads(lines[0])['job_id']}/retry").json()
    assert (retried["status"], retried["collection_id"]) == ("queued", None)
    assert small.get(f"{COLLECTIONS}/{cid}").json()["counts"]["total"] == 2
    small.delete(f"/api/v1/jobs/{retried['job_id']}")

    # Room again: a new collection takes the whole request; sent twice, it adds nothing.
    cid = _open(small)["collection_id"]
    first = _add(small, cid, files[:2]).json()["images"]
    second = _add(small, cid, files[:2]).json()["images"]
    assert [i["job_id"] for i in first] == [i["job_id"] for i in second]
    assert [i["added"] for i in second] == [False, False]
    results = small.get(f"{COLLECTIONS}/{cid}/results", params={"wait": 0.5})
    assert (results.text, results.headers["collection-state"]) == ("", "open")


def test_a_cap_per_collection_and_an_owner_per_collection(
    idle: Callable[..., TestClient], labrador_bytes: bytes
) -> None:
    keyed = idle(max_collection_images=2, api_keys="k-one,k-two")
    keyed.headers["X-API-Key"] = "k-one"
    cid = _open(keyed)["collection_id"]
    files = [(f"{n}.jpg", labrador_bytes) for n in range(3)]
    over = _add(keyed, cid, files)
    assert (over.status_code, over.json()["code"]) == (409, "collection_full")
    assert _add(keyed, cid, files[:2]).status_code == 200
    assert _add(keyed, cid, files[:2]).status_code == 200  # found, not added: within the cap

    keyed.headers["X-API-Key"] = "k-two"
    for method, path in [
        ("GET", ""),
        ("GET", "/results"),
        ("POST", "/close"),
        ("DELETE", ""),
    ]:
        answer = keyed.request(method, f"{COLLECTIONS}/{cid}{path}")
        assert (answer.status_code, answer.json()["code"]) == (404, "collection_not_found")
    assert _add(keyed, cid, files[:1]).status_code == 404


def test_an_idempotency_key_opens_one_collection(idle: Callable[..., TestClient]) -> None:
    api = idle()
    headers = {"Idempotency-Key": "folder-run-1"}
    first = api.post(COLLECTIONS, json={"top_k": 2}, headers=headers).json()
    again = api.post(COLLECTIONS, json={"top_k": 2}, headers=headers).json()
    assert first["collection_id"] == again["collection_id"]
    other = api.post(COLLECTIONS, json={"top_k": 4}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    unknown = api.post(COLLECTIONS, json={"model": "resnet"})
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_model")


def test_an_add_where_redis_holds_some_of_the_scripts_keeps_every_image(
    idle: Callable[..., TestClient], idle_redis: RedisServer, labrador_bytes: bytes
) -> None:
    """Redis holds the enqueue script (an earlier API loaded it) but not the collect script: the
    API loads what it lacks before the transaction that calls both. One that met NOSCRIPT
    halfway would have run its enqueue, and sent again, found its own jobs as seen before and
    deleted their images."""
    client = idle_redis.client()
    client.script_flush()
    client.script_load(scripts.ENQUEUE.body)
    api = idle()
    cid = _open(api)["collection_id"]
    images = _add(api, cid, [("a.jpg", labrador_bytes), ("b.jpg", labrador_bytes)]).json()
    for image in images["images"]:
        assert client.exists(image_key(image["job_id"])), image
    assert api.get(f"{COLLECTIONS}/{cid}").json()["counts"]["queued"] == 2


def test_canceling_a_completed_collection_leaves_it_completed(
    api: TestClient, labrador_bytes: bytes
) -> None:
    cid = _open(api)["collection_id"]
    _add(api, cid, [("a.jpg", labrador_bytes)])
    api.post(f"{COLLECTIONS}/{cid}/close")
    assert api.get(f"{COLLECTIONS}/{cid}", params={"wait": 30}).json()["state"] == "completed"
    after = api.delete(f"{COLLECTIONS}/{cid}").json()
    assert (after["state"], after["counts"]["succeeded"]) == ("completed", 1)
    empty = _open(api)["collection_id"]
    assert api.delete(f"{COLLECTIONS}/{empty}").json()["state"] == "canceled"

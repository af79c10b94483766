"""The OpenAPI document says what this deployment takes, settings included."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from api.main import create_app
from shared.settings import Settings

pytestmark = pytest.mark.unit
SUBMITS = (("/api/v1/jobs", "post"), ("/api/v1/jobs/batch", "post"))


def _parameters(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return {p["name"]: p for p in document["paths"][path][method]["parameters"]}


def test_the_document_names_the_models_served_and_the_longest_wait() -> None:
    settings = Settings(max_wait_seconds=12)
    document = create_app(settings).openapi()
    for path, method in (*SUBMITS, ("/api/v1/predict", "post"), ("/api/v1/model-info", "get")):
        model = _parameters(document, path, method)["model"]
        assert model["schema"]["enum"] == ["squeezenet"]
    for path, method in (*SUBMITS, ("/api/v1/jobs/{job_id}", "get")):
        assert _parameters(document, path, method)["wait"]["schema"]["maximum"] == 12


def test_callback_url_is_offered_only_with_webhooks_on() -> None:
    off = create_app(Settings()).openapi()
    on = create_app(Settings(webhook_secret="whsec_" + "A" * 32)).openapi()
    for path, method in SUBMITS:
        assert "callback_url" not in _parameters(off, path, method)
        assert "callback_url" in _parameters(on, path, method)


def test_a_submits_answer_links_to_reading_canceling_and_retrying_its_job() -> None:
    paths = create_app(Settings()).openapi()["paths"]
    links = paths["/api/v1/jobs"]["post"]["responses"]["202"]["links"]
    assert set(links) == {"GetJob", "CancelJob", "RetryJob"}
    assert links["CancelJob"] == {
        "operationId": paths["/api/v1/jobs/{job_id}"]["delete"]["operationId"],
        "parameters": {"job_id": "$response.body#/job_id"},
    }
    batch = paths["/api/v1/jobs/batch"]["post"]["responses"]["200"]["links"]
    assert batch["GetJob"]["parameters"] == {"job_id": "$response.body#/jobs/0/job_id"}


def test_an_upload_is_never_empty_and_a_batch_holds_1_to_max_batch_files() -> None:
    schemas = create_app(Settings(max_batch_files=8)).openapi()["components"]["schemas"]
    assert schemas["Body_submit_job_api_v1_jobs_post"]["properties"]["file"]["minLength"] == 1
    files = schemas["Body_submit_batch_api_v1_jobs_batch_post"]["properties"]["files"]
    assert (files["minItems"], files["maxItems"], files["items"]["minLength"]) == (1, 8, 1)


def test_a_wrong_method_names_every_method_the_path_takes() -> None:
    """A job's path has a route per method; the 405 names them all, not the first route's."""
    client = TestClient(create_app(Settings()))  # no lifespan: the answer needs no Redis
    answer = client.options("/api/v1/jobs/5f0c0000-0000-0000-0000-000000000000")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET, HEAD"
    assert answer.json()["code"] == "method_not_allowed"

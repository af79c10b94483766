"""The job API against a real redis-server, a real Celery worker and uvicorn."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import Stack
from tests.images import encode, gradient, png_header_only

pytestmark = pytest.mark.integration


def _submit(
    api: httpx.Client, data: bytes, name: str = "x.jpg", **params: object
) -> httpx.Response:
    return api.post("/api/v1/jobs", files={"file": (name, data, "image/jpeg")}, params=params)


def test_submit_then_long_poll_returns_labrador(api: httpx.Client, labrador_bytes: bytes) -> None:
    response = _submit(api, labrador_bytes, "labrador.jpg")
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert response.headers["location"].endswith(f"/api/v1/jobs/{job['job_id']}")
    done = api.get(response.headers["location"], params={"wait": 20}).json()
    assert done["status"] == "succeeded"
    top = done["result"]["predictions"][0]
    assert (top["class_id"], top["label"]) == (208, "Labrador retriever")
    assert len(done["result"]["predictions"]) == 5
    assert done["model"] == "squeezenet"  # the default model
    assert done["result"]["model"]["name"] == "squeezenet"
    assert done["result"]["model"]["version"] == "1.1-opset7"
    assert set(done["result"]["timings"]) == {
        "queue_wait_ms",
        "decode_ms",
        "preprocess_ms",
        "inference_ms",
    }
    assert done["started_at"]
    assert done["finished_at"]
    assert (done["width"], done["height"], done["content_type"]) == (244, 244, "image/jpeg")


def test_long_poll_returns_as_soon_as_the_job_ends(
    api: httpx.Client, labrador_bytes: bytes
) -> None:
    job_id = _submit(api, labrador_bytes).json()["job_id"]
    started = time.monotonic()
    done = api.get(f"/api/v1/jobs/{job_id}", params={"wait": 30}).json()
    assert done["status"] == "succeeded"
    assert time.monotonic() - started < 15  # far below the 30 s it was allowed to wait


def test_submit_with_wait_answers_with_the_result_in_one_request(
    api: httpx.Client, labrador_bytes: bytes
) -> None:
    response = _submit(api, labrador_bytes, "labrador.jpg", wait=20, top_k=3)
    assert response.status_code == 200
    done = response.json()
    assert done["status"] == "succeeded"
    assert done["result"]["predictions"][0]["label"] == "Labrador retriever"
    assert len(done["result"]["predictions"]) == 3
    assert response.headers["location"].endswith(f"/api/v1/jobs/{done['job_id']}")
    assert api.get(response.headers["location"]).json() == done


def test_submit_with_wait_answers_with_a_result_too_large_to_announce(
    api: httpx.Client, labrador_bytes: bytes
) -> None:
    """Such a job's end is announced by its id alone; the waiting request reads it back."""
    response = _submit(api, labrador_bytes, wait=20, top_k=1000)
    assert response.status_code == 200
    predictions = response.json()["result"]["predictions"]
    assert len(predictions) == 1000
    assert predictions[0]["label"] == "Labrador retriever"


def test_submit_with_wait_reports_a_failed_job_as_finished(api: httpx.Client) -> None:
    data = encode(gradient(), "JPEG")
    corrupt = data[:300] + b"\x00" * 300 + data[-2:]  # passes the header check, not the decode
    response = _submit(api, corrupt, wait=20)
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert response.json()["error"]["code"] == "invalid_image"


def test_top_k_parameter_sets_result_length(api: httpx.Client, labrador_bytes: bytes) -> None:
    job_id = _submit(api, labrador_bytes, top_k=12).json()["job_id"]
    done = api.get(f"/api/v1/jobs/{job_id}", params={"wait": 20}).json()
    probabilities = [p["probability"] for p in done["result"]["predictions"]]
    assert len(probabilities) == 12
    assert probabilities == sorted(probabilities, reverse=True)


def test_batch_creates_one_job_per_file(api: httpx.Client, labrador_bytes: bytes) -> None:
    files = [("files", (f"dog{i}.jpg", labrador_bytes, "image/jpeg")) for i in range(3)]
    files.append(("files", ("grad.png", encode(gradient(), "PNG"), "image/png")))
    response = api.post("/api/v1/jobs/batch", files=files)
    assert response.status_code == 202
    jobs = response.json()["jobs"]
    assert [j["filename"] for j in jobs] == ["dog0.jpg", "dog1.jpg", "dog2.jpg", "grad.png"]
    results = [api.get(f"/api/v1/jobs/{j['job_id']}", params={"wait": 20}).json() for j in jobs]
    assert [r["status"] for r in results] == ["succeeded"] * 4
    assert [r["result"]["predictions"][0]["class_id"] for r in results[:3]] == [208] * 3


def test_batch_with_a_bad_file_is_refused_whole_and_names_it(
    api: httpx.Client, labrador_bytes: bytes
) -> None:
    files = [
        ("files", ("good.jpg", labrador_bytes, "image/jpeg")),
        ("files", ("bad.jpg", b"not an image", "image/jpeg")),
    ]
    response = api.post("/api/v1/jobs/batch", files=files)
    assert response.status_code == 400
    assert "files[1]" in response.json()["message"]
    assert "bad.jpg" in response.json()["message"]


def test_batch_over_the_file_limit_is_refused(api: httpx.Client) -> None:
    tiny = encode(gradient(8, 8), "PNG")
    files = [("files", (f"{i}.png", tiny, "image/png")) for i in range(65)]
    response = api.post("/api/v1/jobs/batch", files=files)
    assert response.status_code == 400
    assert "1 to 64" in response.json()["message"]


def test_unknown_job_is_404(api: httpx.Client) -> None:
    response = api.get(f"/api/v1/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


def test_malformed_job_id_is_422(api: httpx.Client) -> None:
    response = api.get("/api/v1/jobs/not-a-uuid")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_finished_job_cannot_be_canceled(api: httpx.Client, labrador_bytes: bytes) -> None:
    job_id = _submit(api, labrador_bytes).json()["job_id"]
    api.get(f"/api/v1/jobs/{job_id}", params={"wait": 20})
    response = api.delete(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 409
    assert response.json()["code"] == "job_not_cancelable"


def test_image_bytes_are_deleted_once_processed(
    api: httpx.Client, stack: Stack, labrador_bytes: bytes
) -> None:
    job_id = _submit(api, labrador_bytes).json()["job_id"]
    api.get(f"/api/v1/jobs/{job_id}", params={"wait": 20})
    client = stack.redis.client()
    assert client.exists(f"imgclf:job:{job_id}")
    assert not client.exists(f"imgclf:image:{job_id}")


def test_image_that_fails_full_decode_ends_as_failed_job(api: httpx.Client) -> None:
    data = encode(gradient(), "JPEG")
    corrupt = data[:300] + b"\x00" * 300 + data[-2:]  # passes the header check, not the decode
    job_id = _submit(api, corrupt).json()["job_id"]
    done = api.get(f"/api/v1/jobs/{job_id}", params={"wait": 20}).json()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "invalid_image"
    assert "Invalid image file" in done["error"]["message"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "invalid_image"),
        (b"%PDF-1.4 not an image", 400, "invalid_image"),
        (encode(gradient(), "JPEG")[:2000], 400, "invalid_image"),
        (encode(gradient(), "PNG")[:500], 400, "invalid_image"),
        (encode(gradient(64, 64), "ICO"), 415, "unsupported_format"),
        (png_header_only(200_000, 200_000), 413, "image_too_large"),
    ],
    ids=["empty", "pdf", "truncated-jpeg", "truncated-png", "ico", "bomb"],
)
def test_bad_uploads_get_clear_4xx_errors(
    api: httpx.Client, data: bytes, status: int, code: str
) -> None:
    response = _submit(api, data)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    if status == 400:
        assert "Invalid image file" in body["message"]


def test_missing_file_is_422(api: httpx.Client) -> None:
    response = api.post("/api/v1/jobs", data={"other": "x"})
    assert response.status_code == 422
    assert "file" in response.json()["message"]


@pytest.mark.parametrize("top_k", [0, 1001, "many"])
def test_bogus_top_k_is_422(api: httpx.Client, labrador_bytes: bytes, top_k: object) -> None:
    assert _submit(api, labrador_bytes, top_k=top_k).status_code == 422


@pytest.mark.parametrize("wait", [-1, 31, "soon"])
def test_bogus_wait_is_422(api: httpx.Client, wait: object) -> None:
    assert api.get(f"/api/v1/jobs/{uuid.uuid4()}", params={"wait": wait}).status_code == 422


def test_upload_over_max_upload_bytes_is_413(api: httpx.Client) -> None:
    big = b"\xff\xd8" + b"\0" * (10 * 1024 * 1024 + 10)
    response = _submit(api, big)
    assert response.status_code == 413
    assert response.json()["code"] == "upload_too_large"


def test_chunked_upload_is_cut_off_while_reading(stack: Stack) -> None:
    """No Content-Length: the limit is enforced on the bytes as they stream in."""
    boundary = "imgclf-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    def body() -> object:
        yield head
        for _ in range(12):
            yield b"\0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{stack.api_url}/api/v1/jobs",
        content=body(),  # type: ignore[arg-type]
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["code"] == "upload_too_large"

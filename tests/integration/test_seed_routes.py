"""The seed's routes keep their exact shapes, served through the queue."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_predict_returns_ten_best_classes_highest_first(
    api: httpx.Client, labrador_bytes: bytes
) -> None:
    response = api.post(
        "/api/v1/predict", files={"file": ("dog.jpg", labrador_bytes, "image/jpeg")}
    )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert set(response.json()) == {"predictions"}
    assert len(predictions) == 10
    assert predictions[0]["class_name"] == "Labrador retriever"
    assert set(predictions[0]) == {"class_name", "confidence"}
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)


def test_predict_rejects_bad_image_like_the_seed(api: httpx.Client) -> None:
    response = api.post("/api/v1/predict", files={"file": ("x.jpg", b"garbage", "image/jpeg")})
    assert response.status_code == 400
    assert "Invalid image file" in response.json()["message"]


def test_model_info_keeps_seed_fields_and_reports_the_loaded_model(api: httpx.Client) -> None:
    info = api.get("/api/v1/model-info").json()
    assert info["name"] == "SqueezeNet 1.1"
    assert info["input_shape"] == [1, 3, 224, 224]
    assert info["output_shape"] == [1, 1000]
    assert info["description"]
    assert info["num_classes"] == 1000
    assert len(info["sha256"]) == 64
    assert info["workers_online"] >= 1
    assert "centre crop 224" in info["preprocessing"]


def test_health_is_ok(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "OK"}


def test_ready_when_redis_and_a_worker_are_up(api: httpx.Client) -> None:
    response = api.get("/ready")
    assert response.status_code == 200
    assert response.json()["workers_online"] >= 1


def test_metrics_count_predictions_by_status(api: httpx.Client, labrador_bytes: bytes) -> None:
    def count(status: str) -> float:
        for line in api.get("/metrics").text.splitlines():
            if line.startswith(f'image_classifier_predictions_total{{status="{status}"}}'):
                return float(line.split()[-1])
        return 0.0

    ok_before, bad_before = count("200"), count("400")
    api.post("/api/v1/predict", files={"file": ("dog.jpg", labrador_bytes, "image/jpeg")})
    api.post("/api/v1/predict", files={"file": ("x.jpg", b"garbage", "image/jpeg")})
    assert count("200") == ok_before + 1
    assert count("400") == bad_before + 1
    assert "image_classifier_prediction_seconds_bucket" in api.get("/metrics").text


def test_openapi_documents_the_job_routes(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/jobs",
        "/api/v1/jobs/batch",
        "/api/v1/jobs/{job_id}",
        "/api/v1/predict",
    } <= set(paths)

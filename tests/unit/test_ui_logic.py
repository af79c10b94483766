from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared.schemas import Job, Prediction
from tests.images import encode, gradient
from ui.cli_output import Item, format_table
from ui.client import ApiClient, ApiError, ApiUnavailableError, Upload
from ui.folder_run import find_images
from ui.formatting import (
    chart_rows,
    job_details,
    percent,
    quantile_from_buckets,
    ratio,
    thumbnail,
)
from ui.monitoring import Prometheus, PrometheusUnavailableError, from_api, from_prometheus
from ui.trends import CHARTS, Window, chart_points

pytestmark = pytest.mark.unit


def _predictions(*probabilities: float) -> list[Prediction]:
    return [
        Prediction(class_id=i, label=f"c{i}", probability=p) for i, p in enumerate(probabilities)
    ]


def test_percent_formats_probabilities() -> None:
    assert percent(0.68098) == "68.1 %"
    assert percent(1.0, digits=0) == "100 %"


def test_chart_rows_are_highest_first_in_percent_and_capped_at_ten() -> None:
    rows = chart_rows(_predictions(*(i / 100 for i in range(12))))
    assert len(rows) == 10
    assert [r.label for r in rows[:2]] == ["c11", "c10"]
    assert rows[0].percent == 11.0
    assert [r.rank for r in rows] == list(range(1, 11))


def test_ratio_is_none_without_data() -> None:
    assert ratio(1, 0) is None
    assert ratio(None, 5) is None
    assert ratio(1, 4) == 0.25


def test_quantile_from_buckets_matches_prometheus_interpolation() -> None:
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile_from_buckets(buckets, 0.5) == pytest.approx(0.01)
    assert quantile_from_buckets(buckets, 0.7) == pytest.approx(0.01 + 0.09 * 0.5)
    assert quantile_from_buckets([], 0.5) is None
    assert quantile_from_buckets([(float("inf"), 0.0)], 0.5) is None


def _client(handler: object) -> ApiClient:
    return ApiClient("http://api.test", transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_client_turns_api_errors_into_code_and_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"code": "job_not_found", "message": "Job x not found"})

    with pytest.raises(ApiError) as caught:
        _client(handler).job("x")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        404,
        "job_not_found",
        "Job x not found",
    )
    assert not isinstance(caught.value, ApiUnavailableError)


def test_client_reports_5xx_and_non_json_as_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    with pytest.raises(ApiUnavailableError, match="Bad gateway"):
        _client(handler).model_info()


def test_client_reports_connection_failure_as_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ApiUnavailableError, match="not reachable"):
        _client(handler).submit(Upload("a.jpg", b"x"))


def test_client_submit_sends_multipart_and_top_k() -> None:
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["top_k"] = request.url.params["top_k"]
        seen["body"] = request.read()
        return httpx.Response(
            202,
            json={
                "job_id": "j",
                "status": "queued",
                "created_at": "2026-01-01T00:00:00Z",
                "filename": "a.jpg",
                "content_type": "image/jpeg",
                "size_bytes": 1,
                "width": 1,
                "height": 1,
                "top_k": 3,
            },
        )

    job = _client(handler).submit(Upload("a.jpg", b"imagebytes"), top_k=3)
    assert job.job_id == "j"
    assert seen["top_k"] == "3"
    assert b"imagebytes" in seen["body"]  # type: ignore[operator]


def test_monitoring_falls_back_to_api_figures() -> None:
    metrics = "\n".join(
        [
            'imgclf_jobs_finished_total{status="succeeded"} 8.0',
            'imgclf_jobs_finished_total{status="failed"} 2.0',
            'image_classifier_prediction_seconds_bucket{le="0.01"} 1.0',
            'image_classifier_prediction_seconds_bucket{le="0.1"} 4.0',
            'image_classifier_prediction_seconds_bucket{le="+Inf"} 4.0',
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text=metrics + "\n")
        return httpx.Response(
            200, json={"queued": 3, "running": 1, "workers_online": 2, "max_queue_length": 10}
        )

    snapshot = from_api(_client(handler))
    assert snapshot.source == "api"
    assert (snapshot.total, snapshot.success_rate, snapshot.error_rate) == (10.0, 0.8, 0.2)
    assert (snapshot.queued, snapshot.running, snapshot.workers) == (3, 1, 2)
    assert snapshot.p50["/predict request"] == pytest.approx(0.01 + 0.09 / 3)


def test_cli_finds_images_in_folders_sorted(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(encode(gradient(8, 8), "PNG"))
    found = list(find_images([tmp_path]))
    assert found == [(n, tmp_path / n) for n in ("a.JPG", "b.png", "sub/c.webp")]
    # With several paths, a folder's ids start with it as given; a file's id is its path.
    several = [custom_id for custom_id, _ in find_images([tmp_path / "sub", tmp_path / "b.png"])]
    assert several == [f"{tmp_path}/sub/c.webp", f"{tmp_path}/b.png"]


def test_cli_table_shows_rejections_and_results() -> None:
    table = format_table([Item(Path("bad.jpg"), error="Invalid image file: empty")])
    assert "rejected" in table
    assert "Invalid image file" in table


def test_thumbnail_is_a_small_png_and_none_for_broken_uploads() -> None:
    import io

    from PIL import Image

    preview = thumbnail(encode(gradient(2000, 1000), "JPEG"))
    assert preview is not None
    image = Image.open(io.BytesIO(preview))
    assert image.format == "PNG"
    assert max(image.size) <= 320
    assert thumbnail(encode(gradient(40, 30).convert("I;16"), "TIFF")) is not None
    assert thumbnail(b"\x89PNG\r\n\x1a\n" + b"\0" * 50) is None


def test_monitoring_reads_windowed_figures_from_prometheus() -> None:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        queries.append(query)
        if "imgclf_jobs_finished_total" in query:
            result = [
                {"metric": {"status": "succeeded"}, "value": [0, "9"]},
                {"metric": {"status": "failed"}, "value": [0, "1"]},
            ]
        elif (
            "imgclf_worker_inference_seconds_bucket" in query and "histogram_quantile" not in query
        ):
            result = [
                {"metric": {"le": "0.01"}, "value": [0, "4"]},
                {"metric": {"le": "+Inf"}, "value": [0, "10"]},
            ]
        elif "imgclf_worker_processes" in query:
            result = [{"metric": {}, "value": [0, "4"]}]
        else:
            result = [{"metric": {}, "value": [0, "0.005"]}]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})

    snapshot = from_prometheus(
        Prometheus("http://prom.test", transport=httpx.MockTransport(handler)), "15m"
    )
    assert (snapshot.success_rate, snapshot.error_rate, snapshot.workers) == (0.9, 0.1, 4)
    assert snapshot.p95["inference"] == 0.005
    assert snapshot.distribution == [(0.01, 4.0), (float("inf"), 10.0)]
    assert any("[15m]" in q for q in queries)


def test_monitoring_reports_prometheus_down() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(PrometheusUnavailableError):
        from_prometheus(
            Prometheus("http://prom.test", transport=httpx.MockTransport(handler)), "5m"
        )


def test_client_reads_the_apis_upload_limits() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/limits"
        return httpx.Response(
            200, json={"max_upload_bytes": 5 * 2**20, "file_extensions": [".png"]}
        )

    assert _client(handler).limits()["max_upload_bytes"] == 5 * 2**20


def test_job_details_name_the_model_the_retried_job_and_the_webhook_state() -> None:
    base = {"job_id": "j", "status": "failed", "created_at": "2026-12-02T00:00:00Z",
            "filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 1, "width": 1,
            "height": 1, "top_k": 5}  # fmt: skip
    assert job_details(Job.model_validate(base)) == ["model `squeezenet`"]
    retried = Job.model_validate(
        {
            **base,
            "retry_of": "old",
            "callback_url": "https://h/x",
            "priority": "high",
            "model": "superclass",
        }
    )
    assert job_details(retried) == [
        "model `superclass`",
        "high priority",
        "retry of `old`",
        "webhook waits for the job to end",
    ]
    failing = {"status": "retrying", "attempts": 2, "last_error": "HTTP 503"}
    assert job_details(Job.model_validate({**base, "callback": failing}))[1:] == [
        "webhook retrying (2 attempts): HTTP 503"
    ]
    done = {"status": "delivered", "attempts": 1, "last_error": None}
    assert job_details(Job.model_validate({**base, "callback": done}))[1:] == [
        "webhook delivered (1 attempt)"
    ]


def test_a_chart_reads_its_range_with_a_step_that_fits_the_window() -> None:
    asked: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        asked.append(request.url.params)
        result = [
            {"metric": {}, "values": [[100, "0.004"], [130, "NaN"], [160, "0.006"]]},
        ]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})

    prom = Prometheus("http://prom.test", transport=httpx.MockTransport(handler))
    inference = next(chart for chart in CHARTS if chart.title == "Inference time")
    points = chart_points(prom, inference, Window(seconds=3600, end=1000.0))
    # One query per quantile; a NaN step (no job then) is left out; seconds shown as ms.
    assert [p["query"] for p in asked] == [
        line.promql.format(rate="120s") for line in inference.lines
    ]
    assert {(p["start"], p["end"], p["step"]) for p in asked} == {("-2600.0", "1000.0", "30.0")}
    assert [(p.time, round(p.value, 3), p.series) for p in points[:2]] == [
        (100.0, 4.0, "p50"),
        (160.0, 6.0, "p50"),
    ]
    assert {p.series for p in points} == {"p50", "p95", "p99"}
    # A short window keeps at least a 5 s step and a one-minute rate.
    assert (Window(300, 0).step, Window(300, 0).rate) == (5.0, "60s")


def test_a_chart_names_each_series_by_its_label() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        result = [
            {"metric": {"status": "404"}, "values": [[1, "0.5"]]},
            {"metric": {}, "values": [[1, "1"]]},
        ]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})

    prom = Prometheus("http://prom.test", transport=httpx.MockTransport(handler))
    errors = next(chart for chart in CHARTS if chart.unit == "answers/s")
    assert '{status=~"[45].."}' in errors.lines[0].promql.format(rate="60s")
    points = chart_points(prom, errors, Window(300, 10.0))
    assert [p.series for p in points] == ["404", "?"]

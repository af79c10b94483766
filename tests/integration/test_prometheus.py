"""A real Prometheus server scrapes a running stack; the seed's queries give the right numbers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.samples import Sample

from tests.processes import ROOT, metric_samples, wait_until
from tests.prometheus import Monitored, monitored_stack

pytestmark = pytest.mark.integration

GOOD, BAD = 6, 2


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    with monitored_stack(tmp_path_factory.mktemp("prom")) as stack:
        yield stack


def _eventually(check: object, *, timeout: float = 30) -> None:
    wait_until(check, timeout=timeout, what="Prometheus figures")  # type: ignore[arg-type]


def test_seed_queries_return_the_right_numbers(monitored: Monitored, labrador_bytes: bytes) -> None:
    predict = f"{monitored.api}/api/v1/predict"
    targets = {"imgclf-api", "imgclf-worker", "flower"}
    _eventually(lambda: {r["metric"]["job"] for r in monitored.query("up == 1")} >= targets)

    # One request first, so the counters exist before the measured window begins.
    assert httpx.post(predict, files={"file": ("d.jpg", labrador_bytes)}).status_code == 200
    _eventually(lambda: monitored.scalar("sum(image_classifier_predictions_total)") == 1)
    time.sleep(2)  # a scrape or two with the series at 1

    for _ in range(GOOD - 1):
        assert httpx.post(predict, files={"file": ("d.jpg", labrador_bytes)}).status_code == 200
    for _ in range(BAD):
        assert httpx.post(predict, files={"file": ("x.jpg", b"junk")}).status_code == 400
    after = _latency_totals(monitored.api)

    _eventually(lambda: monitored.scalar("sum(image_classifier_predictions_total)") == GOOD + BAD)
    assert monitored.scalar('sum(image_classifier_predictions_total{status="200"})') == GOOD
    assert monitored.scalar('sum(image_classifier_predictions_total{status!="200"})') == BAD
    success = monitored.scalar(
        'sum(image_classifier_predictions_total{status="200"}) / '
        "sum(image_classifier_predictions_total) * 100"
    )
    assert success == pytest.approx(100 * GOOD / (GOOD + BAD))
    average = monitored.scalar(
        "sum(rate(image_classifier_prediction_seconds_sum[5m])) / "
        "sum(rate(image_classifier_prediction_seconds_count[5m]))"
    )
    # Prometheus scraped the histogram at zero before the first request (up == 1 above), so the
    # 5-minute window holds every request.
    expected = after[0] / after[1]
    assert average == pytest.approx(expected, rel=1e-6)
    assert monitored.query("rate(image_classifier_prediction_seconds_bucket[5m])")


def test_worker_metrics_count_every_prefork_child(
    monitored: Monitored, labrador_bytes: bytes
) -> None:
    _eventually(lambda: monitored.scalar("sum(imgclf_worker_processes)") == 2)
    assert monitored.scalar("sum(imgclf_worker_model_loaded)") == 2
    succeeded = 'sum(imgclf_worker_tasks_total{outcome="succeeded"})'
    # The starting count as the worker exports it, once Prometheus has scraped it: the previous
    # test's jobs may still be a scrape away, and counting from a stale figure would never match.
    done = _worker_tasks_succeeded(monitored)
    _eventually(lambda: (monitored.scalar(succeeded) or 0) == done)
    jobs = [
        httpx.post(f"{monitored.api}/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)}).json()
        for _ in range(4)
    ]
    for job in jobs:
        httpx.get(f"{monitored.api}/api/v1/jobs/{job['job_id']}", params={"wait": 20})
    _eventually(lambda: monitored.scalar(succeeded) == done + 4)
    assert monitored.scalar("sum(imgclf_worker_inference_seconds_count)") >= 4
    # The API is a separate scrape target: its figures may arrive a scrape later.
    _eventually(lambda: monitored.scalar('sum(imgclf_jobs_submitted_total{route="jobs"})') == 4)
    _eventually(
        lambda: (monitored.scalar('max(imgclf_jobs_finished_total{status="succeeded"})') or 0) >= 4
    )
    assert monitored.scalar("max(imgclf_queue_length)") == 0
    assert monitored.scalar("max(imgclf_jobs_running)") == 0


def test_killed_child_is_replaced_not_double_counted(monitored: Monitored) -> None:
    pids, _ = _node_processes(monitored)
    assert len(pids) == 2
    subprocess.run(["kill", "-9", pids[0]], check=True)

    seen: list[object] = []  # what each poll found, for the failure message

    def replaced() -> bool:
        try:
            live, processes = _node_processes(monitored)
        except Exception as exc:
            seen.append(exc)
            raise
        seen.append((live, processes))
        return len(live) == 2 and pids[0] not in live and processes == 2

    try:
        wait_until(replaced, timeout=30, what="replacement worker child")
    except TimeoutError:
        pytest.fail(f"killed child {pids[0]}; last polls (model pids, processes): {seen[-3:]}")


def _node_processes(monitored: Monitored) -> tuple[list[str], float]:
    """The pids that report a loaded model, and the node's live process gauge."""
    samples = _worker_samples(monitored)
    pids = [s.labels["pid"] for s in samples if s.name == "imgclf_worker_model_load_seconds"]
    processes = next(s.value for s in samples if s.name == "imgclf_worker_processes")
    return pids, processes


def _worker_tasks_succeeded(monitored: Monitored) -> float:
    """The worker node's own count of succeeded tasks, read from its endpoint."""
    return sum(
        s.value
        for s in _worker_samples(monitored)
        if s.name == "imgclf_worker_tasks_total" and s.labels.get("outcome") == "succeeded"
    )


def _worker_samples(monitored: Monitored) -> list[Sample]:
    return metric_samples(monitored.worker_metrics)


def _latency_totals(api: str) -> tuple[float, float]:
    values = {}
    for line in httpx.get(f"{api}/metrics").text.splitlines():
        for name in (
            "image_classifier_prediction_seconds_sum",
            "image_classifier_prediction_seconds_count",
        ):
            if line.startswith(name + " "):
                values[name] = float(line.split()[-1])
    return values["image_classifier_prediction_seconds_sum"], values[
        "image_classifier_prediction_seconds_count"
    ]


def test_flower_exports_only_flower_metrics(monitored: Monitored) -> None:
    """Flower imports the worker's Celery app; the worker's series are the node's alone, or
    Prometheus would see each of them twice (once as zeros)."""
    _eventually(lambda: httpx.get(f"{monitored.flower}/metrics").status_code == 200)
    names = {sample.name for sample in metric_samples(monitored.flower)}
    assert any(name.startswith("flower_") for name in names)
    assert not [name for name in names if name.startswith("imgclf_")]
    jobs = {r["metric"]["job"] for r in monitored.query("imgclf_worker_tasks_total")}
    assert jobs <= {"imgclf-worker"}


def test_the_alert_rules_load_and_a_healthy_stack_raises_none(monitored: Monitored) -> None:
    """The rules prometheus.yml names are loaded by the real server and evaluated against the
    stack's real series: none of them fires (or is pending) while the stack is healthy."""
    _eventually(lambda: httpx.get(f"{monitored.prometheus}/api/v1/rules").json()["data"]["groups"])
    groups = httpx.get(f"{monitored.prometheus}/api/v1/rules").json()["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert "ImgclfNoWorkerOnline" in rules
    assert "ImgclfRedisUnreachable" in rules
    _eventually(lambda: all(rule.get("lastEvaluation", "0001").startswith("20")
                            for rule in _rules(monitored)))  # fmt: skip
    assert {rule["name"]: rule["health"] for rule in _rules(monitored)} == dict.fromkeys(
        rules, "ok"
    )
    # A previous test's kill may leave an alert pending for an evaluation or two: the healthy
    # stack is judged once it has settled.
    seen: list[str] = []

    def no_alerts() -> bool:
        alerts = httpx.get(f"{monitored.prometheus}/api/v1/alerts").json()["data"]["alerts"]
        seen[:] = [alert["labels"]["alertname"] for alert in alerts]
        return not seen

    try:
        _eventually(no_alerts, timeout=30)
    except TimeoutError:
        pytest.fail(f"alerts on a healthy stack: {seen}")


def _rules(monitored: Monitored) -> list[dict]:
    groups = httpx.get(f"{monitored.prometheus}/api/v1/rules").json()["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_grafana_panel_query_runs_and_returns_data(
    monitored: Monitored, labrador_bytes: bytes
) -> None:
    """Grafana does not run here: its dashboard's PromQL runs against this real Prometheus after
    real traffic, and every query must parse and return series."""
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/imgclf.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 12
    for _ in range(3):
        job = httpx.post(f"{monitored.api}/api/v1/jobs", files={"file": ("d.jpg", labrador_bytes)})
        httpx.get(f"{monitored.api}/api/v1/jobs/{job.json()['job_id']}", params={"wait": 20})
    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = [query for query in queries if not monitored.query(query)]
        return not empty

    try:
        _eventually(all_answer, timeout=60)
    except TimeoutError:
        pytest.fail(f"queries without data: {empty}")

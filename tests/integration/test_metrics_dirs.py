"""One PROMETHEUS_MULTIPROC_DIR for every process (one `.env` for all): no process group empties
another's metrics, and Flower exports only its own."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests.processes import (
    RedisServer,
    free_port,
    metric_samples,
    running,
    service_env,
    wait_until,
    worker_command,
)

pytestmark = pytest.mark.integration


def _predict_count(api: str, status: str) -> float:
    return sum(
        sample.value
        for sample in metric_samples(api)
        if sample.name == "image_classifier_predictions_total"
        and sample.labels.get("status") == status
    )


def test_the_seed_series_survive_a_worker_node_starting_on_the_same_directory(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    shared_dir = tmp_path / "metrics"
    env = service_env(
        redis.url, PROMETHEUS_MULTIPROC_DIR=str(shared_dir), PREDICT_TIMEOUT_SECONDS="1"
    )
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    api_cmd = [sys.executable, "-m", "api", "--port", str(port), "--workers", "2"]
    try:
        with running(api_cmd, env=env, log=tmp_path / "api.log"):
            wait_until(
                lambda: httpx.get(f"{api}/health").status_code == 200, timeout=30, what="api"
            )
            # No worker yet: /predict times out, and the seed's counter records a 504.
            files = {"file": ("dog.jpg", labrador_bytes, "image/jpeg")}
            assert httpx.post(f"{api}/api/v1/predict", files=files, timeout=10).status_code == 504
            assert _predict_count(api, "504") == 1
            with running(worker_command(), env=env, log=tmp_path / "worker.log"):
                wait_until(
                    lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60, what="worker"
                )
                assert _predict_count(api, "504") == 1
                response = httpx.post(f"{api}/api/v1/predict", files=files, timeout=30)
                assert response.status_code == 200
                assert (_predict_count(api, "504"), _predict_count(api, "200")) == (1, 1)
                second = [*worker_command(hostname="w2"), "--concurrency", "1"]
                with running(second, env={**env, "WORKER_METRICS_PORT": str(free_port())},
                             log=tmp_path / "worker2.log"):  # fmt: skip
                    wait_until(
                        lambda: httpx.get(f"{api}/ready").json().get("workers_online") == 3,
                        timeout=60,
                        what="second worker node",
                    )
                    worker_metrics = f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}"
                    images = [s for s in metric_samples(worker_metrics)
                              if s.name == "imgclf_worker_images_total"]  # fmt: skip
                    assert [s.value for s in images] == [1.0]
                assert _predict_count(api, "200") == 1
    finally:
        redis.stop()

"""A real Prometheus scraping a real stack (Redis, a worker node, the API, Flower), with
prometheus.yml's own jobs and alerting rules pointed at this machine's ports."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.processes import (
    ROOT,
    RedisServer,
    flower_command,
    free_port,
    running,
    service_env,
    wait_until,
    worker_command,
)


class Monitored:
    def __init__(
        self, api: str, prometheus: str, worker_metrics: str, flower: str, redis_url: str = ""
    ) -> None:
        self.api = api
        self.redis_url = redis_url
        self.prometheus = prometheus
        self.worker_metrics = worker_metrics
        self.flower = flower

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": promql})
        response.raise_for_status()
        return response.json()["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None


def _prometheus_config(path: Path, *, api: int, worker: int, flower: int) -> None:
    """prometheus.yml itself, with only the targets pointed at this machine's ports."""
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    ports = {"imgclf-api": api, "imgclf-worker": worker, "flower": flower}
    config["rule_files"] = [str(ROOT / rules) for rules in config["rule_files"]]
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in ports]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    path.write_text(yaml.safe_dump(config))


@contextmanager
def monitored_stack(tmp: Path) -> Iterator[Monitored]:
    """Redis, a worker node, a 2-process API, Flower and Prometheus scraping them every second."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus")
    redis = RedisServer(tmp / "redis")
    redis.start()
    api_port, worker_port, flower_port, prom_port = (free_port() for _ in range(4))
    base = service_env(redis.url)
    worker_env = {
        **base,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "worker-metrics"),
        "WORKER_METRICS_PORT": str(worker_port),
    }
    api_env = {**base, "PROMETHEUS_MULTIPROC_DIR": str(tmp / "api-metrics")}
    flower_env = {**base, "DEV_MODE": "1"}
    _prometheus_config(tmp / "prometheus.yml", api=api_port, worker=worker_port, flower=flower_port)
    api_cmd = [sys.executable, "-m", "api", "--port", str(api_port), "--workers", "2"]
    flower_cmd = flower_command(flower_port)
    prom_cmd = [
        "prometheus",
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    try:
        with (
            running(worker_command(), env=worker_env, log=tmp / "worker.log"),
            running(api_cmd, env=api_env, log=tmp / "api.log"),
            running(flower_cmd, env=flower_env, log=tmp / "flower.log"),
            running(prom_cmd, env=base, log=tmp / "prometheus.log"),
        ):
            api = f"http://127.0.0.1:{api_port}"
            wait_until(
                lambda: httpx.get(f"{api}/ready").status_code == 200, timeout=60, what="stack"
            )
            yield Monitored(
                api,
                f"http://127.0.0.1:{prom_port}",
                f"http://127.0.0.1:{worker_port}",
                f"http://127.0.0.1:{flower_port}",
                redis.url,
            )
    finally:
        redis.stop()

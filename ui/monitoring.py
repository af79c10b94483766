"""The figures of the Monitoring page: from Prometheus, or from the API when it is not running."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ui.client import ApiClient
from ui.formatting import quantile_from_buckets, ratio

_TERMINAL = ("succeeded", "failed", "canceled")
# The page's time windows, in seconds.
WINDOWS = {"5 minutes": 300, "15 minutes": 900, "1 hour": 3600, "6 hours": 21600, "1 day": 86400}
LATENCIES = {
    "queue wait": "imgclf_worker_queue_wait_seconds",
    "inference": "imgclf_worker_inference_seconds",
    "/predict request": "image_classifier_prediction_seconds",
}


@dataclass
class Snapshot:
    """What the Monitoring page shows, wherever it came from."""

    source: str
    succeeded: float | None = None
    failed: float | None = None
    canceled: float | None = None
    queued: float | None = None
    running: float | None = None
    workers: float | None = None
    p50: dict[str, float | None] = field(default_factory=dict)
    p95: dict[str, float | None] = field(default_factory=dict)
    distribution: list[tuple[float, float]] = field(default_factory=list)

    @property
    def total(self) -> float | None:
        parts = [v for v in (self.succeeded, self.failed) if v is not None]
        return sum(parts) if parts else None

    @property
    def success_rate(self) -> float | None:
        return ratio(self.succeeded, self.total)

    @property
    def error_rate(self) -> float | None:
        return ratio(self.failed, self.total)


class PrometheusUnavailableError(Exception):
    pass


Series = list[tuple[float, float]]


class Prometheus:
    """Just enough of Prometheus's HTTP API: instant and range queries."""

    def __init__(
        self, base_url: str, *, timeout: float = 3.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def _result(self, path: str, params: dict[str, str | float]) -> list[dict[str, Any]]:
        try:
            response = self._http.get(path, params=params)
            response.raise_for_status()
            result: list[dict[str, Any]] = response.json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise PrometheusUnavailableError(str(exc)) from exc
        return result

    def vector(self, promql: str) -> list[tuple[dict[str, str], float]]:
        result = self._result("/api/v1/query", {"query": promql})
        return [(item["metric"], float(item["value"][1])) for item in result]

    def matrix(
        self, promql: str, *, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], Series]]:
        """Each series of a range query: its labels and its (unix time, value) points, the
        steps where it had no value (NaN: no job in a latency's step) left out."""
        params: dict[str, str | float] = {"query": promql, "start": start, "end": end, "step": step}
        result = self._result("/api/v1/query_range", params)
        return [
            (item["metric"], [(float(t), float(v)) for t, v in item["values"] if v != "NaN"])
            for item in result
        ]

    def scalar(self, promql: str) -> float | None:
        values = [v for _, v in self.vector(promql) if not math.isnan(v)]
        return values[0] if values else None


def from_prometheus(prom: Prometheus, window: str) -> Snapshot:
    """Windowed figures for the whole cluster; `window` is a PromQL duration."""
    finished = {
        labels.get("status", ""): value
        for labels, value in prom.vector(
            f"max by (status) (increase(imgclf_jobs_finished_total[{window}]))"
        )
    }
    snapshot = Snapshot(
        source="prometheus",
        succeeded=finished.get("succeeded", 0.0),
        failed=finished.get("failed", 0.0),
        canceled=finished.get("canceled", 0.0),
        queued=prom.scalar("max(imgclf_queue_length)"),
        running=prom.scalar("max(imgclf_jobs_running)"),
        workers=prom.scalar("sum(imgclf_worker_processes)"),
    )
    for name, metric in LATENCIES.items():
        for q, target in ((0.5, snapshot.p50), (0.95, snapshot.p95)):
            target[name] = prom.scalar(
                f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[{window}])))"
            )
    buckets = prom.vector(
        f"sum by (le) (increase(imgclf_worker_inference_seconds_bucket[{window}]))"
    )
    snapshot.distribution = sorted((float(labels["le"]), value) for labels, value in buckets)
    return snapshot


def from_api(api: ApiClient) -> Snapshot:
    """The API's own figures since it started: no window, no worker latencies."""
    snapshot = Snapshot(source="api", succeeded=0.0, failed=0.0, canceled=0.0)
    queue = api.queue()
    snapshot.queued, snapshot.running = queue["queued"], queue["running"]
    snapshot.workers = queue["workers_online"]
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(api.metrics_text()):
        for sample in family.samples:
            status = sample.labels.get("status")
            if sample.name == "imgclf_jobs_finished_total" and status in _TERMINAL:
                setattr(snapshot, status, sample.value)
            elif sample.name == "image_classifier_prediction_seconds_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    snapshot.p50["/predict request"] = quantile_from_buckets(buckets, 0.5)
    snapshot.p95["/predict request"] = quantile_from_buckets(buckets, 0.95)
    return snapshot

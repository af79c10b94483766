"""The Monitoring page's charts: what each one plots (PromQL over Prometheus's range API), in
which unit, over the chosen window, with a step that fits the window."""

from __future__ import annotations

from dataclasses import dataclass

from ui.monitoring import Prometheus

# Points per chart: enough for a smooth line, few enough for a quick answer.
POINTS = 120
MIN_STEP_SECONDS = 5.0
# A rate needs a few scrapes in its range (compose scrapes every 15 s).
MIN_RATE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Line:
    """One query of a chart; `legend` names its series, with `{label}` filled from each one."""

    promql: str
    legend: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    lines: tuple[Line, ...]
    # Values are multiplied by this for display (seconds shown as milliseconds).
    scale: float = 1.0


def _quantiles(metric: str) -> tuple[Line, ...]:
    return tuple(
        Line(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[{{rate}}])))", f"p{p}")
        for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))
    )


CHARTS = (
    Chart(
        "Jobs per second by outcome",
        "jobs/s",
        (Line("sum by (outcome) (rate(imgclf_worker_tasks_total[{rate}]))", "{outcome}"),),
    ),
    Chart(
        "End-to-end latency (accepted to done)",
        "ms",
        _quantiles("imgclf_job_end_to_end_seconds"),
        1000,
    ),
    Chart("Queue wait", "ms", _quantiles("imgclf_worker_queue_wait_seconds"), 1000),
    Chart("Inference time", "ms", _quantiles("imgclf_worker_inference_seconds"), 1000),
    Chart(
        "Queue length by queue",
        "jobs",
        (Line("max by (priority) (imgclf_queue_length_by_priority)", "{priority}"),),
    ),
    Chart("Running jobs", "jobs", (Line("max(imgclf_jobs_running)", "running"),)),
    Chart("Workers online", "processes", (Line("sum(imgclf_worker_processes)", "online"),)),
    Chart(
        "API errors per second by status",
        "answers/s",
        (
            Line(
                "sum by (status) (rate(imgclf_http_request_duration_seconds_count"
                '{{status=~"[45].."}}[{rate}]))',
                "{status}",
            ),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Window:
    """The range a chart covers: `seconds` up to `end` (unix time), one point per `step`."""

    seconds: float
    end: float

    @property
    def step(self) -> float:
        return max(MIN_STEP_SECONDS, self.seconds / POINTS)

    @property
    def rate(self) -> str:
        return f"{max(MIN_RATE_SECONDS, int(4 * self.step))}s"


@dataclass(frozen=True, slots=True)
class Point:
    time: float
    value: float
    series: str


def chart_points(prom: Prometheus, chart: Chart, window: Window) -> list[Point]:
    """The chart's points over the window; empty when Prometheus has none there."""
    points: list[Point] = []
    for line in chart.lines:
        promql = line.promql.format(rate=window.rate)
        for labels, values in prom.matrix(
            promql, start=window.end - window.seconds, end=window.end, step=window.step
        ):
            name = line.legend.format_map(_Missing(labels))
            points += [Point(t, v * chart.scale, name) for t, v in values]
    return points


class _Missing(dict[str, str]):
    """Labels for a legend: one a series lacks shows as '?'."""

    def __missing__(self, key: str) -> str:
        return "?"

"""Monitoring: the current figures (throughput, success and error rates, latency, queue and
workers), then charts of them over the chosen window."""

from __future__ import annotations

import time

import altair as alt
import pandas as pd
import streamlit as st

from shared.settings import get_settings
from ui.client import ApiError
from ui.formatting import milliseconds
from ui.monitoring import (
    LATENCIES,
    WINDOWS,
    PrometheusUnavailableError,
    Snapshot,
    from_api,
    from_prometheus,
)
from ui.session import api_client, prometheus
from ui.trends import CHARTS, Chart, Window, chart_points

CHARTS_PER_ROW = 2


def render() -> None:
    st.title("Monitoring")
    settings = get_settings()
    left, right = st.columns([2, 1])
    window_name = left.selectbox("Window", list(WINDOWS), index=1)
    auto = right.toggle("Refresh every 10 s", value=False)
    st.fragment(run_every=10 if auto else None)(_figures)(WINDOWS[window_name])
    st.link_button("Open Flower (queues and workers)", settings.ui_flower_url)


def _figures(window_seconds: int) -> None:
    settings = get_settings()
    try:
        snapshot = from_prometheus(prometheus(), f"{window_seconds}s")
    except PrometheusUnavailableError:
        st.info(
            f"Prometheus is not reachable at {settings.prometheus_url}: showing the API's own "
            "figures since it started (no time window, no worker latencies, no charts)."
        )
        try:
            _show(from_api(api_client()))
        except ApiError as exc:
            st.error(f"The API is unavailable too: {exc.message}")
        return
    _show(snapshot)
    _trends(Window(seconds=window_seconds, end=time.time()))


def _show(snapshot: Snapshot) -> None:
    cols = st.columns(4)
    cols[0].metric("Predictions", _count(snapshot.total))
    cols[1].metric("Success rate", _rate(snapshot.success_rate))
    cols[2].metric("Error rate", _rate(snapshot.error_rate))
    cols[3].metric("Canceled", _count(snapshot.canceled))
    st.subheader("Queue")
    queued, running, workers = st.columns(3)
    queued.metric("Queued", _count(snapshot.queued))
    running.metric("Running", _count(snapshot.running))
    workers.metric("Workers online", _count(snapshot.workers))
    st.subheader("Latency")
    st.table(
        pd.DataFrame(
            [
                {
                    "stage": name,
                    "p50": milliseconds(snapshot.p50.get(name)),
                    "p95": milliseconds(snapshot.p95.get(name)),
                }
                for name in LATENCIES
                if name in snapshot.p50
            ]
        ).set_index("stage")
    )
    if snapshot.distribution:
        _distribution(snapshot.distribution)


def _trends(window: Window) -> None:
    st.subheader("Over the window")
    for start in range(0, len(CHARTS), CHARTS_PER_ROW):
        for column, chart in zip(
            st.columns(CHARTS_PER_ROW), CHARTS[start : start + CHARTS_PER_ROW], strict=False
        ):
            with column:
                _trend(chart, window)


def _trend(chart: Chart, window: Window) -> None:
    try:
        points = chart_points(prometheus(), chart, window)
    except PrometheusUnavailableError as exc:
        st.warning(f"{chart.title}: Prometheus did not answer ({exc})")
        return
    st.markdown(f"**{chart.title}**")
    if not points:
        st.caption("No data in this window.")
        return
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime([p.time for p in points], unit="s", utc=True),
            chart.unit: [p.value for p in points],
            "series": [p.series for p in points],
        }
    )
    start = pd.to_datetime(window.end - window.seconds, unit="s", utc=True)
    end = pd.to_datetime(window.end, unit="s", utc=True)
    line = (
        alt.Chart(frame)
        .mark_line(point=len(frame) < 30)
        .encode(
            x=alt.X("time:T", title="time (UTC)", scale=alt.Scale(domain=[start, end])),
            y=alt.Y(f"{chart.unit}:Q", title=chart.unit, axis=alt.Axis(format=",.3~r")),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["time:T", "series:N", alt.Tooltip(f"{chart.unit}:Q", format=".3~f")],
        )
        .properties(height=220)
    )
    st.altair_chart(line, width="stretch")


def _distribution(buckets: list[tuple[float, float]]) -> None:
    previous, rows = 0.0, list[dict[str, object]]()
    for bound, cumulative in buckets:
        label = "+Inf" if bound == float("inf") else f"≤ {bound * 1000:g} ms"
        rows.append({"bucket": label, "jobs": max(cumulative - previous, 0.0), "order": len(rows)})
        previous = cumulative
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X("bucket:N", sort=alt.SortField("order"), title="inference time"),
            y=alt.Y("jobs:Q", title="jobs"),
        )
    )
    st.caption("Inference time distribution over the window")
    st.altair_chart(chart, width="stretch")


def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"

"""Every metric the API exports, defined in one place."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, disable_created_metrics

# `_created` series double the exposition and no query here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# The seed's two metrics, names and labels kept exactly: dashboards and the README queries use them.
PREDICTIONS = Counter(
    "image_classifier_predictions_total",
    "Responses of POST /api/v1/predict, by HTTP status code",
    ["status"],
)
PREDICTION_SECONDS = Histogram(
    "image_classifier_prediction_seconds",
    "Latency of POST /api/v1/predict, upload to answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0),
)


def observe_prediction(status_code: int, seconds: float) -> None:
    """Record one answered `/predict` request."""
    PREDICTIONS.labels(status=str(status_code)).inc()
    PREDICTION_SECONDS.observe(seconds)

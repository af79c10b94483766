from __future__ import annotations

import pytest

from shared.schemas import JobStatus
from worker.metrics import WORKER_REGISTRY, observe_delivery
from worker.outcomes import Processed
from worker.pipeline import Classification

pytestmark = pytest.mark.unit


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return WORKER_REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_delivery_counts_each_job_its_outcome_and_a_decoding_fallback() -> None:
    """Metrics stay per job whatever a message carries: a message of three jobs of one model,
    one skipped, one failed, one classified after its progressive JPEG was decoded whole."""
    names = {
        "skipped": ("imgclf_worker_tasks_total", {"outcome": "skipped", "model": "superclass"}),
        "failed": ("imgclf_worker_tasks_total", {"outcome": "failed", "model": "superclass"}),
        "succeeded": ("imgclf_worker_tasks_total", {"outcome": "succeeded", "model": "superclass"}),
        "images": ("imgclf_worker_images_total", {"model": "superclass"}),
        "inferences": ("imgclf_worker_inference_seconds_count", {"model": "superclass"}),
        "fallbacks": ("imgclf_worker_jpeg_fast_path_fallbacks_total", {"reason": "unparsed"}),
        "messages": ("imgclf_worker_delivery_jobs_count", None),
        "jobs": ("imgclf_worker_delivery_jobs_sum", None),
    }
    before = {key: _sample(*name) for key, name in names.items()}
    classified = Classification([], 0.01, 0.002, 0.008, fallback="unparsed")
    observe_delivery(3, [
        Processed("a", JobStatus.SUCCEEDED, classification=classified, end_to_end_seconds=0.1),
        Processed("b", JobStatus.FAILED, end_to_end_seconds=0.1),
    ], model="superclass")  # fmt: skip
    after = {key: _sample(*name) for key, name in names.items()}
    assert {key: after[key] - before[key] for key in names} == {
        "skipped": 1, "failed": 1, "succeeded": 1, "images": 1, "inferences": 1, "fallbacks": 1,
        "messages": 1, "jobs": 3,
    }  # fmt: skip

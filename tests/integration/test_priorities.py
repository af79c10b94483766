"""Priorities: each has a queue of its own, and every worker takes high before normal before
low. Real API, Redis and worker."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.conftest import Stack
from tests.integration.jobs_helpers import wait_all_terminal

pytestmark = pytest.mark.integration


def _finished(job: dict) -> float:
    return datetime.fromisoformat(job["finished_at"]).timestamp()


def test_high_jobs_finish_before_the_normal_queue_drains(
    stack: Stack, labrador_bytes: bytes
) -> None:
    with httpx.Client(base_url=stack.api_url, timeout=60) as http:
        normal = []
        for _ in range(4):  # 200 normal jobs, queued in four batches
            files = [("files", (f"n{i}.jpg", labrador_bytes, "image/jpeg")) for i in range(50)]
            normal += [
                j["job_id"] for j in http.post("/api/v1/jobs/batch", files=files).json()["jobs"]
            ]
        waiting = http.get("/api/v1/queue").json()
        high = []
        for i in range(10):
            answer = http.post("/api/v1/jobs", params={"priority": "high"},
                               files={"file": (f"h{i}.jpg", labrador_bytes, "image/jpeg")})  # fmt: skip
            assert answer.json()["priority"] == "high"
            high.append(answer.json()["job_id"])
    assert waiting["priorities"]["normal"]["queued"] > 100, waiting  # the normal queue was long
    assert set(waiting["priorities"]) == {"high", "normal", "low"}
    jobs = wait_all_terminal(stack.api_url, normal + high, timeout=120)
    assert {j["status"] for j in jobs.values()} == {"succeeded"}
    last_high = max(_finished(jobs[i]) for i in high)
    normal_done = sorted(_finished(jobs[i]) for i in normal)
    # Every high job was done while most of the normal ones still waited.
    left = sum(t > last_high for t in normal_done)
    print(f"priorities: the last high job finished with {left} of 200 normal jobs still to go")
    assert left >= 50, (last_high, normal_done[-1])


def test_a_priority_outside_the_three_is_refused(api: httpx.Client, labrador_bytes: bytes) -> None:
    answer = api.post("/api/v1/jobs", params={"priority": "urgent"},
                      files={"file": ("d.jpg", labrador_bytes, "image/jpeg")})  # fmt: skip
    assert answer.status_code == 422
    low = api.post("/api/v1/jobs", params={"priority": "low", "wait": 20},
                   files={"file": ("d.jpg", labrador_bytes, "image/jpeg")}).json()  # fmt: skip
    assert (low["priority"], low["status"]) == ("low", "succeeded")
    metrics = api.get("/metrics").text
    assert 'imgclf_queue_length_by_priority{priority="high"}' in metrics

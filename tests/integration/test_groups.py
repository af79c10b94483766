"""Jobs in groups, with real processes: one message carries many jobs, and every job keeps its
own outcome, attempts, time limit and recovery (poison images, killed nodes, cancels)."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from PIL import Image

from tests.images import encode, gradient
from tests.integration.jobs_helpers import count_by_status, wait_all_terminal
from tests.integration.rig import Rig
from tests.integration.test_faults import count_by_status_now
from tests.processes import SHARED_IMAGES, children, metric_samples, wait_until

pytestmark = pytest.mark.integration

FOX = SHARED_IMAGES / "red-fox-4928x3280.jpg"


def _batch(api: str, images: list[bytes], **params: object) -> list[str]:
    files = [("files", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)]
    response = httpx.post(f"{api}/api/v1/jobs/batch", files=files, params=params, timeout=60)
    assert response.status_code == 202, response.text
    return [job["job_id"] for job in response.json()["jobs"]]


def _messages(client: redis.Redis, queue: str = "imgclf") -> list[list[str]]:
    """The job ids each queued message carries, oldest first."""
    raw = reversed(client.lrange(queue, 0, -1))
    return [json.loads(base64.b64decode(json.loads(m)["body"]))[0] for m in raw]


def _job(client: redis.Redis, job_id: str, field: str) -> str | None:
    value = client.hget(f"imgclf:job:{job_id}", field)
    return None if value is None else value.decode()


def test_a_batch_is_one_message_whose_jobs_each_end_their_own_way(
    rig: Rig, labrador_bytes: bytes
) -> None:
    """16 files, one message; one job canceled while queued, one broken image: each job ends as
    it should, and the worker ran them as one delivery."""
    broken = encode(gradient(), "JPEG")[:300] + b"\0" * 300 + b"\xff\xd9"
    images = [labrador_bytes] * 16
    images[5] = broken
    ids = _batch(rig.api, images)
    client = rig.redis.client()
    assert _messages(client) == [ids]
    assert httpx.get(f"{rig.api}/api/v1/queue").json()["queued"] == 16
    assert httpx.delete(f"{rig.api}/api/v1/jobs/{ids[9]}").json()["status"] == "canceled"
    (rig.tmp / "metrics").mkdir()  # the node adds up its processes' samples from here
    rig.env = {**rig.env, "PROMETHEUS_MULTIPROC_DIR": str(rig.tmp / "metrics")}
    rig.start_worker("a", concurrency=1)
    jobs = wait_all_terminal(rig.api, ids, timeout=120)
    assert count_by_status(jobs) == {"succeeded": 14, "failed": 1, "canceled": 1}
    assert jobs[ids[5]]["error"]["code"] == "invalid_image"
    assert {jobs[i]["result"]["predictions"][0]["class_id"] for i in ids if i not in
            (ids[5], ids[9])} == {208}  # fmt: skip
    assert {_job(client, i, "attempts") for i in ids if i != ids[9]} == {"1"}
    # One delivery of 16 jobs, each job counted on its own.
    port = rig.env["WORKER_METRICS_PORT"]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for s in metric_samples(f"http://127.0.0.1:{port}")}  # fmt: skip
    assert samples[("imgclf_worker_delivery_jobs_count", ())] == 1
    assert samples[("imgclf_worker_delivery_jobs_sum", ())] == 16
    tasks = "imgclf_worker_tasks_total"
    assert samples[(tasks, (("model", "squeezenet"), ("outcome", "skipped")))] == 1


def test_submits_that_arrive_together_share_messages_and_keep_their_own_answers(
    rig: Rig, labrador_bytes: bytes
) -> None:
    """Redis holds the first transaction (CLIENT PAUSE) while 24 single submits arrive: they go
    together in the next one, in shared messages, each with its own 202; one of them reuses an
    Idempotency-Key with another image and alone is refused."""
    client = rig.redis.client()
    key = {"Idempotency-Key": "only-once"}
    first = httpx.post(f"{rig.api}/api/v1/jobs", files={"file": ("a.jpg", labrador_bytes)},
                       headers=key)  # fmt: skip
    assert first.status_code == 202
    client.execute_command("CLIENT", "PAUSE", 1500, "WRITE")

    def submit(n: int) -> httpx.Response:
        headers = key if n == 0 else {}
        data = encode(gradient(), "PNG") if n == 0 else labrador_bytes
        return httpx.post(f"{rig.api}/api/v1/jobs", files={"file": (f"{n}.jpg", data)},
                          headers=headers, timeout=30)  # fmt: skip

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(submit, range(24)))
    assert answers[0].status_code == 422
    assert answers[0].json()["code"] == "idempotency_key_reused"
    assert {a.status_code for a in answers[1:]} == {202}
    ids = [a.json()["job_id"] for a in answers[1:]]
    assert len(set(ids)) == 23
    carried = _messages(client)
    assert sorted(i for m in carried for i in m if i in ids) == sorted(ids)
    assert max(len(m) for m in carried) > 1  # some came together
    transactions = [s for s in metric_samples(rig.api)
                    if s.name == "imgclf_api_transaction_requests_count"]  # fmt: skip
    assert transactions[0].value < 25  # fewer transactions than submits
    rig.start_worker("a")
    jobs = wait_all_terminal(rig.api, [first.json()["job_id"], *ids], timeout=120)
    assert count_by_status(jobs) == {"succeeded": 24}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def _when_over(node: int, mb: float, act: Callable[[int], None]) -> Iterator[list[int]]:
    """`act` on each of the node's processes once its memory passes `mb` MB (as a container's
    memory limit or the kernel's OOM killer would): while it decodes the one huge image of a
    test, whose 49 megapixels take some 500 MB where the others' take a few. Yields the pids."""
    acted: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            for pid in children(node):
                if pid not in acted and _rss_mb(pid) > mb:
                    acted.append(pid)
                    act(pid)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield acted
    finally:
        stop.set()
        thread.join()


def _huge_image() -> bytes:
    """A 49-megapixel lossless WebP of 72 KB: decoding it takes ~500 MB and most of a second."""
    y, x = np.mgrid[0:7000, 0:7000]
    pixels = np.stack([x * 255 // 7000, y * 255 // 7000, (x + y) * 255 // 14000], -1)
    return encode(Image.fromarray(pixels.astype(np.uint8)), "WEBP", lossless=True)


# The memory past which a worker process is working on `_huge_image` (at rest: ~115 MB).
HUGE_MB = 400


def test_a_poison_image_fails_alone_and_its_group_mates_lose_no_attempt(rig: Rig) -> None:
    """The 4th of 8 images kills the process that runs it, every time (its decode passes the
    memory limit, and the OOM killer strikes): it fails with worker_lost after MAX_ATTEMPTS (2
    here) lone starts; the 7 others succeed, one attempt each."""
    fox = FOX.read_bytes()
    rig.env = {**rig.env, "MAX_ATTEMPTS": "2"}
    ids = _batch(rig.api, [fox, fox, fox, _huge_image(), fox, fox, fox, fox])
    client = rig.redis.client()
    node = rig.start_worker("a", concurrency=2)
    with _when_over(node.pid, HUGE_MB, lambda pid: os.kill(pid, signal.SIGKILL)) as kills:
        started = time.monotonic()
        jobs = wait_all_terminal(rig.api, ids, timeout=240)
    assert jobs[ids[3]]["status"] == "failed"
    assert jobs[ids[3]]["error"]["code"] == "worker_lost"
    assert len(kills) == 3  # in the group, then alone twice
    mates = [jobs[i] for i in ids if i != ids[3]]
    assert {job["status"] for job in mates} == {"succeeded"}
    assert {job["result"]["predictions"][0]["class_id"] for job in mates} == {277}
    assert {_job(client, i, "attempts") for i in ids if i != ids[3]} == {"1"}
    print(
        f"\npoison in a group of 8: {len(kills)} processes killed, it failed worker_lost, 7 "
        f"mates succeeded with 1 attempt each, all done in {time.monotonic() - started:.1f} s"
    )


def test_a_node_killed_in_the_middle_of_a_group_of_16_loses_none_and_runs_none_twice(
    rig: Rig,
) -> None:
    fox = FOX.read_bytes()
    ids = _batch(rig.api, [fox] * 16)
    node = rig.start_worker("a", concurrency=1)
    wait_until(lambda: count_by_status_now(rig, ids).get("succeeded", 0) >= 3, timeout=120,
               what="the group under way")  # fmt: skip
    os.killpg(node.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    done_before = {i for i, n in count_by_status_each(rig, ids).items() if n == "succeeded"}
    rig.start_worker("b", concurrency=2)
    jobs = wait_all_terminal(rig.api, ids, timeout=240)
    assert count_by_status(jobs) == {"succeeded": 16}
    assert {job["result"]["predictions"][0]["class_id"] for job in jobs.values()} == {277}
    client = rig.redis.client()
    # One start each: those finished before the kill never ran again, the others ran once more,
    # their start in the dead group given back.
    assert {_job(client, i, "attempts") for i in ids} == {"1"}
    assert 3 <= len(done_before) < 16
    print(
        f"\nnode killed mid-group of 16: {len(done_before)} done before, all 16 succeeded "
        f"{time.monotonic() - killed_at:.1f} s after the kill (node start included), "
        "1 attempt each"
    )


def count_by_status_each(rig: Rig, ids: list[str]) -> dict[str, str]:
    with httpx.Client(base_url=rig.api) as http:
        return {i: http.get(f"/api/v1/jobs/{i}").json()["status"] for i in ids}


def test_each_job_of_a_group_keeps_its_own_time_limit(rig: Rig, labrador_bytes: bytes) -> None:
    """The process is stopped (SIGSTOP) for 4 s while it decodes the 2nd of 4 jobs, past its
    2 s limit: that job fails with `timeout`; the jobs before and after it succeed."""
    rig.env = {**rig.env, "TASK_SOFT_TIME_LIMIT_SECONDS": "2", "TASK_TIME_LIMIT_SECONDS": "8"}
    ids = _batch(rig.api, [labrador_bytes, _huge_image(), labrador_bytes, labrador_bytes])
    node = rig.start_worker("a", concurrency=1)

    def pause(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(4, os.kill, (pid, signal.SIGCONT)).start()

    with _when_over(node.pid, HUGE_MB, pause) as paused:
        jobs = wait_all_terminal(rig.api, ids, timeout=120)
    assert len(paused) == 1
    assert [jobs[i]["status"] for i in ids] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert jobs[ids[1]]["error"]["code"] == "timeout"

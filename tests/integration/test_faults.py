"""Faults injected into real processes: every accepted job still reaches the right end state."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.jobs_helpers import count_by_status, submit_many, wait_all_terminal
from tests.integration.rig import Rig
from tests.models import SQUEEZENET
from tests.processes import (
    SHARED_IMAGES,
    RedisServer,
    api_server,
    children,
    running,
    service_env,
    wait_until,
    worker_command,
)

pytestmark = pytest.mark.integration


def _assert_all_labrador(jobs: dict[str, dict]) -> None:
    assert count_by_status(jobs) == {"succeeded": len(jobs)}
    assert {j["result"]["predictions"][0]["class_id"] for j in jobs.values()} == {208}


def test_sigkill_of_a_worker_child_mid_run_loses_no_job(rig: Rig, labrador_bytes: bytes) -> None:
    node = rig.start_worker("a")
    job_ids = submit_many(rig.api, labrador_bytes, 300)
    wait_until(
        lambda: count_by_status_now(rig, job_ids).get("succeeded", 0) >= 50,
        timeout=60,
        what="first 50 jobs",
    )
    victim = children(node.pid)[0]
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    jobs = wait_all_terminal(rig.api, job_ids, timeout=120)
    _assert_all_labrador(jobs)
    print(
        f"\nchild SIGKILL: 300 submitted, {len(jobs)} succeeded, recovered in "
        f"{time.monotonic() - started:.1f} s"
    )


def test_sigkill_of_the_whole_node_then_restart_loses_no_job(rig: Rig) -> None:
    fox = (SHARED_IMAGES / "red-fox-4928x3280.jpg").read_bytes()  # ~0.4 s each: many in flight
    node = rig.start_worker("a")
    job_ids = submit_many(rig.api, fox, 40)
    wait_until(
        lambda: count_by_status_now(rig, job_ids).get("succeeded", 0) >= 4,
        timeout=60,
        what="first jobs",
    )
    os.killpg(node.pid, signal.SIGKILL)
    stuck = count_by_status_now(rig, job_ids).get("running", 0)
    killed_at = time.monotonic()
    rig.start_worker("b")
    jobs = wait_all_terminal(rig.api, job_ids, timeout=180)
    assert count_by_status(jobs) == {"succeeded": 40}
    assert {j["result"]["predictions"][0]["class_id"] for j in jobs.values()} == {277}
    print(
        f"\nnode SIGKILL: 40 submitted, {stuck} running at the kill, all succeeded "
        f"{time.monotonic() - killed_at:.1f} s after it"
    )


def test_sigterm_finishes_running_jobs_and_leaves_the_rest_queued(rig: Rig) -> None:
    fox = (SHARED_IMAGES / "red-fox-4928x3280.jpg").read_bytes()
    node = rig.start_worker("a", concurrency=1)
    job_ids = submit_many(rig.api, fox, 20)
    wait_until(
        lambda: count_by_status_now(rig, job_ids).get("running", 0) >= 1,
        timeout=60,
        what="a running job",
    )
    node.send_signal(signal.SIGTERM)  # warm shutdown of the main process
    node.wait(timeout=60)
    after = count_by_status_now(rig, job_ids)
    assert after.get("running", 0) == 0
    assert after.get("succeeded", 0) >= 1
    assert after.get("queued", 0) >= 1
    rig.start_worker("b")
    jobs = wait_all_terminal(rig.api, job_ids, timeout=120)
    assert count_by_status(jobs) == {"succeeded": 20}
    print(
        f"\nSIGTERM: {after.get('succeeded', 0)} finished in the warm shutdown, "
        f"{after.get('queued', 0)} left queued, all 20 done by the next worker"
    )


def test_redis_restart_keeps_queued_jobs_and_everything_recovers(
    rig: Rig, labrador_bytes: bytes
) -> None:
    queued = submit_many(rig.api, labrador_bytes, 20)  # no worker yet: all stay queued
    rig.redis.stop()
    refused = httpx.post(f"{rig.api}/api/v1/jobs", files={"file": ("a.jpg", labrador_bytes)})
    assert refused.status_code == 503
    assert refused.headers["retry-after"]
    assert httpx.get(f"{rig.api}/ready").status_code == 503
    rig.redis.start()  # the append-only file brings the queue back
    rig.start_worker("a")
    later = submit_many(rig.api, labrador_bytes, 20)
    _assert_all_labrador(wait_all_terminal(rig.api, queued + later, timeout=120))


def test_worker_survives_a_redis_outage(rig: Rig, labrador_bytes: bytes) -> None:
    rig.start_worker("a")
    rig.redis.stop()
    time.sleep(3)
    rig.redis.start()
    wait_until(lambda: httpx.get(f"{rig.api}/ready").status_code == 200, timeout=60, what="ready")
    _assert_all_labrador(
        wait_all_terminal(rig.api, submit_many(rig.api, labrador_bytes, 20), timeout=120)
    )


def test_queue_limit_refuses_with_503_and_accepted_jobs_complete(
    tmp_path: Path, labrador_bytes: bytes
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = service_env(redis.url, MAX_QUEUE_LENGTH="10")
    try:
        with api_server(env, tmp_path / "api.log") as api:
            accepted = submit_many(api, labrador_bytes, 10)
            refused = httpx.post(f"{api}/api/v1/jobs", files={"file": ("a.jpg", labrador_bytes)})
            assert refused.status_code == 503
            assert refused.json()["code"] == "queue_full"
            assert int(refused.headers["retry-after"]) >= 1
            with running(worker_command(), env=env, log=tmp_path / "worker.log"):
                _assert_all_labrador(wait_all_terminal(api, accepted, timeout=120))
    finally:
        redis.stop()


@pytest.mark.parametrize("model", ["missing", "corrupt"])
def test_worker_refuses_to_start_with_a_broken_model(tmp_path: Path, model: str) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    folder = tmp_path / "models" / "squeezenet"
    folder.mkdir(parents=True)
    shutil.copy(SQUEEZENET / "card.toml", folder)
    shutil.copy(SQUEEZENET / "imagenet_labels.txt", folder)
    path = folder / "squeezenet1.1-7.onnx"
    if model == "corrupt":
        path.write_bytes(b"\x08\x07" + os.urandom(4096))
    env = service_env(redis.url, MODELS_DIR=str(folder.parent))
    try:
        result = subprocess.run(
            worker_command(), env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0
        assert f"imgclf worker refuses to start: The model file {path}" in result.stderr
        with api_server(env, tmp_path / "api.log") as api:
            ready = httpx.get(f"{api}/ready")
            assert ready.status_code == 503
            assert "no worker" in ready.json()["message"]
    finally:
        redis.stop()


def test_load_of_thousands_of_jobs_from_many_clients_loses_nothing(
    rig: Rig, labrador_bytes: bytes
) -> None:
    rig.start_worker("a")
    started = time.monotonic()
    job_ids = submit_many(rig.api, labrador_bytes, 2000, clients=48)
    submitted = time.monotonic() - started
    jobs = wait_all_terminal(rig.api, job_ids, timeout=300)
    _assert_all_labrador(jobs)
    elapsed = time.monotonic() - started
    print(
        f"\nload: 2000 jobs from 48 clients, submitted in {submitted:.1f} s, all succeeded in "
        f"{elapsed:.1f} s ({2000 / elapsed:.0f} jobs/s), lost 0"
    )


def count_by_status_now(rig: Rig, job_ids: list[str]) -> dict[str, int]:
    from tests.integration.jobs_helpers import statuses

    return count_by_status(statuses(rig.api, job_ids))

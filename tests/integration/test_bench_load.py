"""The benchmark's load generator against the real stack: every job done, every figure there."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench import load, pools, services
from tests.conftest import Stack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["jobs", "jobs-wait"])
def test_load_generator_runs_every_image_through_the_pipeline(
    stack: Stack, labrador_bytes: bytes, mode: str
) -> None:
    finished = stack.redis.client()
    before = int(finished.hget("imgclf:stats:finished", "succeeded") or 0)
    result = load.run(stack.api_url, [labrador_bytes] * 6, clients=3, mode=mode)
    assert int(finished.hget("imgclf:stats:finished", "succeeded") or 0) - before == 6
    assert result.images == 6
    assert len(result.latencies) == 6
    assert result.health, "the /health prober took no samples"
    assert 0 < result.latency_ms(50) <= result.latency_ms(99)
    assert result.images_per_second > 0


def test_load_generator_reports_a_refused_upload(stack: Stack) -> None:
    with pytest.raises(RuntimeError, match="HTTP 400"):
        load.run(stack.api_url, [b"not an image"], clients=1, probe=False)


def test_worker_node_alone_run_counts_each_job_once_finished(
    stack: Stack, labrador_bytes: bytes
) -> None:
    finished = stack.redis.client()
    before = int(finished.hget("imgclf:stats:finished", "succeeded") or 0)
    assert services.drain(stack.redis.url, [labrador_bytes] * 6) > 0
    assert int(finished.hget("imgclf:stats:finished", "succeeded") or 0) - before == 6


def test_worker_node_alone_run_stops_at_a_failed_job(stack: Stack) -> None:
    with pytest.raises(RuntimeError, match="failed"):
        services.drain(stack.redis.url, [b"not an image"])


@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_the_pool_comparison_runs_every_job_on_each_pool(
    pool: str, labrador_bytes: bytes, tmp_path: Path
) -> None:
    """Each pool the comparison measures really classifies (its nodes start, take the jobs
    from Redis and announce them), and its CPU is accounted to the node's processes."""
    run = pools.measure(pool, [labrador_bytes] * 8, cores=2, logs=tmp_path)
    assert run["images_per_second"] > 0
    cpu = run["cpu_ms_per_image"]
    assert cpu["main"] + cpu["children"] > 0
    assert (cpu["children"] > 0) is (pool == "prefork")

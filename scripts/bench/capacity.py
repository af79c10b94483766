"""What one job costs Redis, the API and the worker: the figures docs/SCALING.md derives the
cluster's ceiling per Redis from.

    uv run python -m scripts.bench.capacity [--jobs N] [--clients N] [--per-request N]

Every Redis connection of the API and of the worker node goes through a counting proxy of its
own, so round trips are counted per side (a round trip: what a client sends before the next
answer). Phase 1 submits the jobs with no worker running (the API's cost), one image per
request or `--per-request` images per batch request; phase 2 starts the worker node and lets it
drain them (the worker's cost); phase 3 reads every result once.
Redis's CPU comes from INFO, the API's from /proc. A last phase compares submit latency with
and without waiting for a replica (REDIS_WAIT_REPLICAS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from scripts.bench.counting_proxy import CountingProxy
from scripts.bench.images import LABRADOR
from scripts.bench.services import REDIS, WORKER
from scripts.processes import free_port, running, wait_for_http
from shared.settings import PROJECT_ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def redis_cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def command_calls(client: redis.Redis) -> dict[str, tuple[int, int]]:
    stats: dict[str, Any] = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
    }


def calls_per_job(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], jobs: int
) -> dict[str, list[float]]:
    """[calls, µs inside Redis] per job of each command a phase sent (scripts' own included;
    an EVALSHA's µs include them), most costly first."""
    zero = (0, 0)
    diff = {
        name: [
            round((calls - before.get(name, zero)[0]) / jobs, 3),
            round((usec - before.get(name, zero)[1]) / jobs, 2),
        ]
        for name, (calls, usec) in after.items()
    }
    ranked = sorted(diff.items(), key=lambda item: -item[1][1])
    return {name: figures for name, figures in ranked if figures[0] >= 0.01}


def commands(client: redis.Redis) -> int:
    info: dict[str, Any] = client.info("stats")
    return int(info["total_commands_processed"])


class Meter:
    """Differences of every counter between `start` and `stop`, per job."""

    def __init__(self, sources: dict[str, Callable[[], float]]) -> None:
        self.sources = sources
        self.before: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: read() for name, read in self.sources.items()}

    def per_job(self, jobs: int) -> dict[str, float]:
        return {
            name: round((read() - self.before[name]) / jobs, 6)
            for name, read in self.sources.items()
        }


@contextmanager
def _redis(logs: Path, *extra: str) -> Iterator[tuple[int, redis.Redis]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data, running(
        [*REDIS, "--port", str(port), "--dir", data, *extra], env=dict(os.environ),
        log=logs / f"redis-{port}.log",
    ):  # fmt: skip
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, client


def _env(redis_port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "LOG_LEVEL": "WARNING",
        "MAX_QUEUE_LENGTH": "100000",
        "WORKER_METRICS_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="imgclf-capacity-"),
        **extra,
    }


@contextmanager
def _api(stack: ExitStack, redis_port: int, logs: Path, **extra: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = [sys.executable, "-m", "api", "--port", str(port)]
    proc = stack.enter_context(
        running(command, env=_env(redis_port, **extra), log=logs / f"api-{port}.log")
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/health")
    yield url, proc.pid


def _submit_all(url: str, image: bytes, jobs: int, clients: int, per_request: int) -> list[str]:
    with httpx.Client(base_url=url, timeout=60) as http:

        def one(_: int) -> list[str]:
            if per_request == 1:
                answer = http.post("/api/v1/jobs", files={"file": ("l.jpg", image, "image/jpeg")})
                answer.raise_for_status()
                return [str(answer.json()["job_id"])]
            files = [("files", (f"{n}.jpg", image, "image/jpeg")) for n in range(per_request)]
            answer = http.post("/api/v1/jobs/batch", files=files)
            answer.raise_for_status()
            return [str(job["job_id"]) for job in answer.json()["jobs"]]

        with ThreadPoolExecutor(clients) as pool:
            return [i for ids in pool.map(one, range(jobs // per_request)) for i in ids]


def measure(
    jobs: int, clients: int, image: bytes, logs: Path, per_request: int = 1
) -> dict[str, Any]:
    with ExitStack() as stack:
        redis_port, client = stack.enter_context(_redis(logs))
        api_proxy = stack.enter_context(CountingProxy.serving(redis_port))
        worker_proxy = stack.enter_context(CountingProxy.serving(redis_port))
        url, api_pid = stack.enter_context(_api(stack, api_proxy.port, logs))
        time.sleep(1)  # the event listener's subscription and first scrapes settle
        meter = Meter({
            "redis_round_trips": lambda: api_proxy.round_trips,
            "redis_commands": lambda: commands(client),
            "redis_cpu_ms": lambda: 1000 * redis_cpu(client),
            "api_cpu_ms": lambda: 1000 * cpu_seconds(api_pid),
        })  # fmt: skip
        meter.start()
        calls = command_calls(client)
        ids = _submit_all(url, image, jobs, clients, per_request)
        jobs = len(ids)
        submit: dict[str, Any] = meter.per_job(jobs)
        submit["commands"] = calls_per_job(calls, command_calls(client), jobs)

        worker_meter = Meter({
            "redis_round_trips": lambda: worker_proxy.round_trips,
            "redis_commands": lambda: commands(client),
            "redis_cpu_ms": lambda: 1000 * redis_cpu(client),
        })  # fmt: skip
        # From the node's start: its start-up costs Redis little beside thousands of jobs.
        worker_meter.start()
        calls = command_calls(client)
        started = time.monotonic()
        with running(WORKER, env=_env(worker_proxy.port), log=logs / "worker.log"):
            while int(client.hget("imgclf:stats:finished", "succeeded") or 0) < jobs:
                time.sleep(0.05)
            drain: dict[str, Any] = worker_meter.per_job(jobs)
            drain["commands"] = calls_per_job(calls, command_calls(client), jobs)
        drain["seconds"] = round(time.monotonic() - started, 2)

        meter.start()
        with httpx.Client(base_url=url, timeout=60) as http:
            for job_id in ids:
                http.get(f"/api/v1/jobs/{job_id}").raise_for_status()
        read = meter.per_job(jobs)
    return {
        "jobs": jobs,
        "clients": clients,
        "per_request": per_request,
        "image_bytes": len(image),
        "submit": submit,
        "worker": drain,
        "read": read,
    }


def replica_wait(samples: int, logs: Path) -> dict[str, float]:
    """p50 and p95 of one client's sequential submits, with and without WAIT for a replica."""
    image = LABRADOR.read_bytes()
    figures: dict[str, float] = {}
    with ExitStack() as stack:
        port, _ = stack.enter_context(_redis(logs))
        stack.enter_context(_redis(logs, "--replicaof", "127.0.0.1", str(port)))
        time.sleep(1)
        for replicas in (0, 1):
            url, _ = stack.enter_context(_api(stack, port, logs, REDIS_WAIT_REPLICAS=str(replicas)))
            latencies = []
            with httpx.Client(base_url=url, timeout=60) as http:
                for _ in range(samples):
                    began = time.perf_counter()
                    http.post(
                        "/api/v1/jobs", files={"file": ("l.jpg", image, "image/jpeg")}
                    ).raise_for_status()
                    latencies.append(1000 * (time.perf_counter() - began))
            cuts = statistics.quantiles(latencies, n=20)
            figures[f"wait_{replicas}_p50_ms"] = round(statistics.median(latencies), 2)
            figures[f"wait_{replicas}_p95_ms"] = round(cuts[18], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--image", type=Path, default=LABRADOR, help="the image every job sends")
    parser.add_argument("--per-request", type=int, default=1, help="images per submit (a batch)")
    parser.add_argument("--no-replicas", action="store_true", help="skip the replica-wait phase")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "capacity-results.json")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="imgclf-capacity-logs-"))
    results = measure(args.jobs, args.clients, args.image.read_bytes(), logs, args.per_request)
    if not args.no_replicas:
        results["replica_wait"] = replica_wait(300, logs)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The worker host alone, pool against pool, on the same jobs: Celery's prefork pool (one node,
a child per core), one `--pool=solo` node per core (no dispatch hop to a child), and
`--pool=threads` (one process, one model, a thread per core), each judged against the in-process
limit measured just before and after it.

    uv run python -m scripts.bench.pools [--jobs N] [--rounds R] [--image PATH] [--groups 16,1]

Jobs are queued straight into Redis (`services.drain`: no HTTP, no API), in batches whose
messages carry groups of jobs (`--groups`: each size is a run of its own; 1, a message per job,
is the design before groups), so what is measured is the node: Celery, the job store's round
trips, and the model's own work. CPU is read from /proc per process; "overhead" is the node's
CPU per image above the limit's.
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
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis

from scripts.bench import images as photo
from scripts.bench import inprocess, services
from scripts.processes import free_port, running
from shared import workers
from shared.redis_client import connect
from shared.settings import PROJECT_ROOT, Settings

CACHE = PROJECT_ROOT / ".run" / "bench-images"
POOLS = ("prefork", "solo", "threads")
# A variant: prefork with each process's next message fetched while it works (Celery's
# --prefetch-multiplier; the project keeps 1).
PREFETCH = 4


def node_commands(pool: str, cores: int) -> list[tuple[list[str], dict[str, str]]]:
    """The Celery nodes for `pool` on a host of `cores` cores, with each one's environment."""
    base = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]  # fmt: skip
    if pool == "solo":
        return [
            (
                [*base, "--pool", "solo", "--hostname", f"solo{n}@%h"],
                {"WORKER_CONCURRENCY": "1", "ORT_THREADS_PER_PROCESS": "1"},
            )
            for n in range(cores)
        ]
    extra = ["--prefetch-multiplier", str(PREFETCH)] if pool == "prefork-prefetch" else []
    celery_pool = pool.partition("-")[0]
    return [
        (
            [*base, "--pool", celery_pool, "--concurrency", str(cores), *extra,
             "--hostname", f"{celery_pool}@%h"],
            {"WORKER_CONCURRENCY": str(cores), "ORT_THREADS_PER_PROCESS": "1"},
        )
    ]  # fmt: skip


@contextmanager
def nodes(pool: str, *, cores: int, logs: Path) -> Iterator[tuple[str, list[int], int]]:
    """A fresh redis-server and the pool's nodes; yields the Redis URL, the nodes' pids and
    redis-server's."""
    port = free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data:
        redis = [*services.REDIS, "--port", str(port), "--dir", data]
        redis_pid = stack.enter_context(
            running(redis, env=dict(os.environ), log=logs / "redis.log")
        ).pid
        url = f"redis://127.0.0.1:{port}/0"
        client = connect(Settings(redis_url=url))
        _until(lambda: _answers(client), what="redis-server", logs=logs)
        pids = []
        for n, (command, extra) in enumerate(node_commands(pool, cores)):
            env = {**os.environ, "REDIS_URL": url, "LOG_LEVEL": "WARNING",
                   "WORKER_METRICS_PORT": str(free_port()), "MAX_QUEUE_LENGTH": "100000",
                   "PROMETHEUS_MULTIPROC_DIR": str(Path(data) / "metrics"), **extra}  # fmt: skip
            log = logs / f"{pool}-{n}.log"
            pids.append(stack.enter_context(running(command, env=env, log=log)).pid)
        expected = cores if pool != "threads" else 1
        _until(lambda: len(workers.alive(client)) >= expected, what=f"{pool} workers", logs=logs)
        time.sleep(1.5)  # Celery's consumers start a moment after the processes announce
        yield url, pids, redis_pid


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _until(check: Callable[[], bool], *, what: str, logs: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up (logs in {logs})")
        time.sleep(0.2)


def cpu_of(pids: list[int], redis_pid: int) -> dict[str, float]:
    """CPU seconds so far of the nodes' main processes, of their children, of redis-server and
    of this process (which queues the jobs and reads their finish events)."""
    return {
        "main": sum(services.cpu_seconds(pid) for pid in pids),
        "children": sum(
            services.cpu_seconds(child) for pid in pids for child in services.children(pid)
        ),
        "redis": services.cpu_seconds(redis_pid),
        "driver": time.process_time(),
    }


def measure(
    pool: str, images: list[bytes], *, cores: int, logs: Path, group: int | None = None
) -> dict[str, Any]:
    with nodes(pool, cores=cores, logs=logs) as (url, pids, redis_pid):
        services.drain(url, images[: cores * 4], group=group)  # warm-up: first jobs, caches
        before = cpu_of(pids, redis_pid)
        ips = services.drain(url, images, group=group)
        after = cpu_of(pids, redis_pid)
    cpu = {k: (after[k] - before[k]) / len(images) * 1000 for k in before}
    return {"images_per_second": ips, "cpu_ms_per_image": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.pools",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=1500, help="jobs per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each pool, alternated")
    parser.add_argument("--image", type=Path, help="default: the photo set's 640x480 JPEG")
    parser.add_argument("--pools", default=",".join(POOLS))
    parser.add_argument("--groups", default="16,1", help="jobs per message, a run each")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-pools.json")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    path = args.image or photo.photo_set(CACHE)[0]
    images = [path.read_bytes()] * args.jobs
    limit_rounds = max(1, args.jobs // (cores * 4))

    def limit() -> float:
        return inprocess.limit([path], processes=cores, rounds=limit_rounds)

    variants = [(pool, int(group)) for pool in args.pools.split(",")
                for group in args.groups.split(",")]  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {f"{p} x{g}": [] for p, g in variants}
    limits = [limit()]
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for pool, group in variants:
                run = measure(pool, images, cores=cores, logs=Path(tmp), group=group)
                limits.append(limit())
                around = statistics.mean(limits[-2:])
                run["limit_around"] = around
                run["of_limit"] = run["images_per_second"] / around
                # The limit's processes are busy all the time: its CPU per image is cores/ips.
                limit_cpu = cores / around * 1000
                node_cpu = run["cpu_ms_per_image"]["main"] + run["cpu_ms_per_image"]["children"]
                run["overhead_ms_per_image"] = node_cpu - limit_cpu
                runs[f"{pool} x{group}"].append(run)
                print(_line(f"{pool} x{group}", run), flush=True)
    result = {"image": path.name, "jobs": args.jobs, "cores": cores, "limits": limits,
              "runs": runs}  # fmt: skip
    args.out.write_text(json.dumps(result, indent=2))
    print(f"JSON: {args.out}")


def _line(pool: str, run: dict[str, Any]) -> str:
    cpu = " ".join(f"{k} {v:.2f}" for k, v in run["cpu_ms_per_image"].items())
    return (
        f"{pool:12s} {run['images_per_second']:6.1f} img/s  {run['of_limit']:.0%} of "
        f"{run['limit_around']:.1f}  cpu/img {cpu}  overhead {run['overhead_ms_per_image']:.2f} ms"
    )


if __name__ == "__main__":
    main()

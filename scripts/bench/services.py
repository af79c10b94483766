"""Start the real services on free loopback ports for a benchmark run, and measure their memory."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from scripts.processes import free_port, running, wait_for_http
from shared.jobs import EVENTS_CHANNEL, Grouping, JobStore, NewJob, QueueLimits, announced_job
from shared.kombu_messages import classify_queues
from shared.model_cards import ORIGINAL_MODEL
from shared.queue import make_celery
from shared.redis_client import connect
from shared.schemas import JobStatus
from shared.settings import Settings


@dataclass
class Stack:
    api_url: str
    api_pid: int
    worker_pid: int
    redis_pid: int
    redis_url: str
    worker_metrics_url: str = ""

    def processes(self) -> dict[str, list[int]]:
        """The stack's processes by role, for CPU accounting."""
        return {
            "api": [self.api_pid],
            "worker_processes": children(self.worker_pid),
            "celery_main_process": [self.worker_pid],
            "redis": [self.redis_pid],
        }


REDIS = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
WORKER = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
          "--loglevel", "WARNING", "--without-gossip", "--without-mingle"]  # fmt: skip


@contextmanager
def pipeline(
    *, workers: int, logs: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """redis-server, one Celery worker node with `workers` processes, and the API;
    `extra_env`: settings for both (MODELS_DIR, MODELS, WORKER_MODELS)."""
    redis_port, api_port = free_port(), free_port()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as data:
        redis = [*REDIS, "--port", str(redis_port), "--dir", data]
        redis_proc = stack.enter_context(
            running(redis, env=dict(os.environ), log=logs / "redis.log")
        )
        env = {
            **os.environ,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "WORKER_CONCURRENCY": str(workers),
            "WORKER_METRICS_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            "MAX_QUEUE_LENGTH": "100000",
            **(extra_env or {}),
        }
        worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(Path(data) / "metrics")}
        worker = stack.enter_context(
            running(WORKER, env=worker_env, log=logs / f"worker-{workers}.log")
        )
        api_command = [sys.executable, "-m", "api", "--port", str(api_port)]
        api = stack.enter_context(running(api_command, env=env, log=logs / "api.log"))
        url = f"http://127.0.0.1:{api_port}"
        wait_for_http(f"{url}/health")
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/ready").json().get("workers_online", 0) < workers:
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not come up")
            time.sleep(0.2)
        metrics = f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}"
        yield Stack(url, api.pid, worker.pid, redis_proc.pid, env["REDIS_URL"], metrics)


@contextmanager
def seed_design(*, logs: Path) -> Iterator[str]:
    """The seed's approach: inference inline in the FastAPI handler, one uvicorn process."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "scripts.bench.seed_app:app",
               "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with running(command, env=dict(os.environ), log=logs / "seed.log"):
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health")
        yield url


def rss_mb(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def drain(
    redis_url: str, images: list[bytes], *, group: int | None = None, model: str = ORIGINAL_MODEL
) -> float:
    """Images per second of the worker node alone: the jobs are queued straight into Redis, in
    batches as large as the API accepts, their messages in groups of `group` jobs (default
    GROUP_MAX_JOBS; 1: a message per job), and timed until the last one has finished (no HTTP,
    no API, no clients). Finishes are counted from the jobs' own announcements rather than by
    polling Redis, and a job that fails stops the run with its error. The jobs are `model`'s."""
    settings = Settings(redis_url=redis_url)
    client = connect(settings)
    store = JobStore(client, ttl_seconds=600)
    queues = classify_queues(settings.queue_name, make_celery(settings), [model])
    grouping = Grouping(group or settings.group_max_jobs, settings.group_max_bytes)
    new = NewJob(filename="bench.jpg", content_type="image/jpeg", size_bytes=0, width=0,
                 height=0, top_k=5, model=model)  # fmt: skip
    with client.pubsub(ignore_subscribe_messages=True) as events:  # type: ignore[no-untyped-call]
        events.subscribe(EVENTS_CHANNEL)
        started = time.perf_counter()
        pending: set[str] = set()
        for start in range(0, len(images), settings.max_batch_files):
            batch = images[start : start + settings.max_batch_files]
            jobs = store.enqueue([(new, data) for data in batch], queues=queues,
                                 limits=QueueLimits(len(images)), grouping=grouping)  # fmt: skip
            pending.update(job.job_id for job in jobs)
        quiet_since = time.monotonic()
        while pending:
            # None also stands for a message the subscription ignores (its own confirmation).
            message = events.get_message(timeout=1)
            if message is None:
                if time.monotonic() - quiet_since > 30:
                    raise TimeoutError(f"{len(pending)} jobs still unfinished after 30 s quiet")
                continue
            quiet_since = time.monotonic()
            data: bytes = message["data"]
            # The driver shares the cores it measures: the full job is parsed only if it failed.
            if b'"status":"succeeded"' not in data:
                job_id, job = announced_job(data.decode())
                if job is not None and job.status is not JobStatus.SUCCEEDED:
                    raise RuntimeError(f"job {job_id} ended {job.status.value}: {job.error}")
            pending.discard(data.partition(b" ")[0].decode())
        return len(images) / (time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []

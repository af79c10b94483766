"""Concurrent HTTP clients on one event loop, and a /health prober beside them."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from scripts.bench import http_wire


@dataclass
class LoadResult:
    images: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    def latency_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    def health_ms(self, q: float) -> float:
        return percentile(self.health, q) * 1000 if self.health else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# The path each mode posts an image to; a job still queued or running is then long-polled.
MODES = {
    "jobs": "/api/v1/jobs",  # submit, then long-poll GET /api/v1/jobs/{id}?wait=30
    "jobs-wait": "/api/v1/jobs?wait=30",  # submit and wait in one request
    "predict": "/api/v1/predict",  # the seed's synchronous route
}


async def _job(conn: http_wire.Connection, request: bytes) -> None:
    job = await conn.json(request, expect=(200, 202))
    poll = http_wire.get(f"/api/v1/jobs/{job['job_id']}?wait=30")
    while job["status"] in ("queued", "running"):
        job = await conn.json(poll, expect=200)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job['job_id']} {job['status']}: {job.get('error')}")


async def _predict(conn: http_wire.Connection, request: bytes) -> None:
    await conn.json(request, expect=200)


async def _run(
    url: str, images: list[bytes], *, clients: int, mode: str, probe: bool, fresh: bool = False
) -> LoadResult:
    path, send = MODES[mode], _predict if mode == "predict" else _job
    encoded: dict[int, bytes] = {}  # the workload repeats the same photos: encode each once
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for data in images:
        if id(data) not in encoded:
            encoded[id(data)] = http_wire.multipart_post(path, data)
        queue.put_nowait(encoded[id(data)])
    result = LoadResult(images=len(images), seconds=0.0)
    done = asyncio.Event()

    async def client() -> None:
        conn = http_wire.Connection(url)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                started = time.perf_counter()
                await send(conn, request)
                if fresh:
                    await conn.close()
                result.latencies.append(time.perf_counter() - started)
        finally:
            await conn.close()

    async def prober() -> None:
        conn, health = http_wire.Connection(url), http_wire.get("/health")
        try:
            while not done.is_set():
                started = time.perf_counter()
                await conn.json(health, expect=200)
                result.health.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    probing = asyncio.create_task(prober()) if probe else None
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    done.set()
    if probing is not None:
        await probing
    return result


def run(
    url: str,
    images: list[bytes],
    *,
    clients: int,
    mode: str = "jobs",
    probe: bool = True,
    fresh: bool = False,
) -> LoadResult:
    """Send every image once through `clients` concurrent clients (`mode`: one of `MODES`),
    probing `GET /health` every 20 ms meanwhile when `probe` is set; with `fresh`, a new
    connection per request instead of keep-alive."""
    return asyncio.run(_run(url, images, clients=clients, mode=mode, probe=probe, fresh=fresh))


def idle_latency(
    url: str, data: bytes, *, in_process: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median ms of one job at a time through the pipeline (submit, then long-poll) and of the
    same work in this process, measured alternately so both see the same machine state."""
    pipeline, local = [], []
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(repeats):
            started = time.perf_counter()
            response = http.post("/api/v1/jobs", files={"file": ("img.jpg", data, "image/jpeg")})
            job = http.get(f"/api/v1/jobs/{response.json()['job_id']}", params={"wait": 30})
            assert job.json()["status"] == "succeeded"
            pipeline.append(time.perf_counter() - started)
            started = time.perf_counter()
            in_process()
            local.append(time.perf_counter() - started)
    return statistics.median(pipeline) * 1000, statistics.median(local) * 1000

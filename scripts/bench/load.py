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


# The path each mode posts images to, and the form field: one image per request, or a batch
# (`per_request`). A job still queued or running is then long-polled.
MODES = {
    "jobs": ("/api/v1/jobs", "file"),  # submit, then long-poll GET /api/v1/jobs/{id}?wait=30
    "jobs-wait": ("/api/v1/jobs?wait=30", "file"),  # submit and wait in one request
    "batch-wait": ("/api/v1/jobs/batch?wait=30", "files"),  # a batch, submitted and waited for
    "predict": ("/api/v1/predict", "file"),  # a synchronous route (the seed's; BentoML's)
    "predict-many": ("/api/v1/predict_many", "files"),  # BentoML: a batch per request
    "predict-batched": ("/api/v1/predict_batched", "files"),  # BentoML: adaptive batching
}


async def _jobs(conn: http_wire.Connection, request: bytes) -> None:
    answer = await conn.json(request, expect=(200, 202))
    for job in answer.get("jobs", [answer]):
        poll = http_wire.get(f"/api/v1/jobs/{job['job_id']}?wait=30")
        while job["status"] in ("queued", "running"):
            job = await conn.json(poll, expect=200)
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['job_id']} {job['status']}: {job.get('error')}")


async def _predict(conn: http_wire.Connection, request: bytes) -> None:
    await conn.json(request, expect=200)


@dataclass(frozen=True)
class Load:
    """How the images are sent: `clients` at once, `mode` (one of `MODES`), `per_request`
    images in each request, a new connection per request (`fresh`) or keep-alive."""

    clients: int
    mode: str = "jobs"
    per_request: int = 1
    fresh: bool = False


async def _run(url: str, images: list[bytes], load: Load, *, probe: bool) -> LoadResult:
    (path, field), send = MODES[load.mode], _predict if "predict" in load.mode else _jobs
    encoded: dict[tuple[int, ...], bytes] = {}  # the same photos repeat: encode each request once
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for at in range(0, len(images), load.per_request):
        batch = images[at : at + load.per_request]
        key = tuple(map(id, batch))
        if key not in encoded:
            encoded[key] = http_wire.multipart_post(path, *batch, field=field)
        queue.put_nowait(encoded[key])
    result = LoadResult(images=len(images), seconds=0.0)
    done = asyncio.Event()

    async def client() -> None:
        conn = http_wire.Connection(url)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                started = time.perf_counter()
                await send(conn, request)
                if load.fresh:
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
    await asyncio.gather(*(client() for _ in range(load.clients)))
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
    per_request: int = 1,
) -> LoadResult:
    """Send every image once through `clients` concurrent clients (`mode`: one of `MODES`),
    `per_request` images a request, probing `GET /health` every 20 ms meanwhile when `probe` is
    set; with `fresh`, a new connection per request instead of keep-alive. Latencies are per
    request."""
    load = Load(clients, mode, per_request, fresh)
    return asyncio.run(_run(url, images, load, probe=probe))


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

"""Submit many jobs concurrently and wait for every one of them, for the fault tests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx


def _transport(uds: str | None) -> httpx.HTTPTransport | None:
    return httpx.HTTPTransport(uds=uds) if uds else None


def submit_many(
    api: str,
    data: bytes,
    count: int,
    *,
    clients: int = 16,
    uds: str | None = None,
    per_request: int = 1,
) -> list[str]:
    """Submit `count` copies of an image from `clients` threads; every one must be accepted.
    `uds`: the Unix socket to reach `api` by, instead of TCP; `per_request` > 1: that many
    files to a batch submit (the last one fewer where `count` is not a multiple)."""

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(base_url=api, timeout=30, limits=limits, transport=_transport(uds)) as http:

        def one(_: int) -> str:
            response = http.post("/api/v1/jobs", files={"file": ("img.jpg", data, "image/jpeg")})
            assert response.status_code == 202, response.text
            return str(response.json()["job_id"])

        def batch(size: int) -> list[str]:
            files = [("files", (f"{n}.jpg", data, "image/jpeg")) for n in range(size)]
            response = http.post("/api/v1/jobs/batch", files=files)
            assert response.status_code == 202, response.text
            return [str(job["job_id"]) for job in response.json()["jobs"]]

        with ThreadPoolExecutor(clients) as pool:
            if per_request == 1:
                return list(pool.map(one, range(count)))
            sizes = [min(per_request, count - at) for at in range(0, count, per_request)]
            return [job_id for ids in pool.map(batch, sizes) for job_id in ids]


def statuses(api: str, job_ids: list[str], *, uds: str | None = None) -> dict[str, dict]:
    with httpx.Client(base_url=api, timeout=30, transport=_transport(uds)) as http:
        return {job_id: http.get(f"/api/v1/jobs/{job_id}").json() for job_id in job_ids}


def wait_all_terminal(
    api: str,
    job_ids: list[str],
    *,
    timeout: float,
    uds: str | None = None,
) -> dict[str, dict]:
    """Poll until every job is terminal; fail with the stragglers' states after `timeout`."""
    deadline = time.monotonic() + timeout
    pending = list(job_ids)
    done: dict[str, dict] = {}
    with httpx.Client(base_url=api, timeout=30, transport=_transport(uds)) as http:
        while pending and time.monotonic() < deadline:
            still = []
            for job_id in pending:
                job = http.get(f"/api/v1/jobs/{job_id}").json()
                if job["status"] in ("succeeded", "failed", "canceled"):
                    done[job_id] = job
                else:
                    still.append(job_id)
            pending = still
            if pending:
                time.sleep(0.5)
    assert not pending, f"{len(pending)} job(s) not terminal after {timeout} s: " + str(
        {s["status"] for s in statuses(api, pending, uds=uds).values()}
    )
    return done


def count_by_status(jobs: dict[str, dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs.values():
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return counts

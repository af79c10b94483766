"""A Sentinel-managed Redis: a master SIGKILLed mid-run loses no job that got a 202, the API
answers 503 (never 500) until the sentinels promote a replica, and everything carries on against
the new master without a restart. A 202 means a replica holds the job (Redis WAIT)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx
import pytest

from scripts.processes import free_port
from tests.images import encode, gradient
from tests.integration.jobs_helpers import wait_all_terminal
from tests.processes import (
    RedisServer,
    api_server,
    flower_command,
    flower_lists,
    running,
    service_env,
    supervised,
    wait_until,
    worker_command,
)
from tests.sentinel import SentinelCluster

pytestmark = pytest.mark.integration

# Short task limits so that a job whose claim or outcome the dead master took with it is
# redelivered within the test's bound (the defaults would take two minutes).
FAST_RECOVERY = {
    "TASK_SOFT_TIME_LIMIT_SECONDS": "8",
    "TASK_TIME_LIMIT_SECONDS": "10",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "15",
    "RECOVERY_INTERVAL_SECONDS": "1",
}


def _submit(http: httpx.Client, image: bytes) -> httpx.Response:
    try:
        return http.post("/api/v1/jobs", files={"file": ("g.png", image, "image/png")})
    except httpx.TransportError as exc:  # no answer: not accepted, and not a 500 either
        return httpx.Response(599, text=repr(exc))


def _long_poll(api: str, job_id: str, outcomes: dict[str, str]) -> None:
    """What a client does: long-poll, and on a 503 wait as told and poll again."""
    deadline = time.monotonic() + 120
    with httpx.Client(base_url=api, timeout=40) as http:
        while time.monotonic() < deadline:
            answer = http.get(f"/api/v1/jobs/{job_id}", params={"wait": 20})
            if answer.status_code == 503:
                time.sleep(min(float(answer.headers["Retry-After"]), 2))
                continue
            status = answer.json()["status"]
            if status in ("succeeded", "failed", "canceled"):
                outcomes[job_id] = status
                return
    outcomes[job_id] = "still waiting"


def _flower_sees_the_queue(flower: str) -> bool:
    """Flower's broker page lists the classify queue of each priority (it reads them from the
    master)."""
    return flower_lists(flower, ("imgclf", "imgclf.high", "imgclf.low"))


@pytest.mark.timeout(240)
def test_a_killed_master_loses_no_accepted_job(tmp_path: Path) -> None:
    cluster = SentinelCluster(tmp_path / "redis")
    cluster.start()
    image = encode(gradient(64, 48), "PNG")
    try:
        env = service_env("", **cluster.env(), **FAST_RECOVERY)
        flower_port = free_port()
        flower = f"http://127.0.0.1:{flower_port}"
        with (
            api_server(env, tmp_path / "api.log") as api,
            # Supervised as compose and Kubernetes do: kombu's Sentinel channel can fail to
            # close during the failover ("Unrecoverable error: AttributeError ... hostname",
            # seen once in CI) and the node then exits; a restarted node recovers its jobs.
            supervised(worker_command(), env=env, log=tmp_path / "worker.log") as restarts,
            running(
                flower_command(flower_port), env={**env, "DEV_MODE": "1"}, log=tmp_path / "f.log"
            ),
            httpx.Client(base_url=api, timeout=30) as http,
        ):
            wait_until(lambda: http.get("/ready").status_code == 200, timeout=60, what="ready")
            wait_until(lambda: _flower_sees_the_queue(flower), timeout=60, what="Flower")
            accepted = [_submit(http, image).json()["job_id"] for _ in range(120)]
            # Long-polls in flight across the failover, on jobs still queued behind the rest.
            outcomes: dict[str, str] = {}
            polled = accepted[-5:]
            pollers = [
                threading.Thread(target=_long_poll, args=(api, job_id, outcomes))
                for job_id in polled
            ]
            for poller in pollers:
                poller.start()
            old_master = cluster.kill_master()
            killed_at = time.monotonic()

            answers: list[httpx.Response] = []
            refused_for: float | None = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and sum(a.status_code == 202 for a in answers) < 150:
                answer = _submit(http, image)
                answers.append(answer)
                if answer.status_code == 202:
                    accepted.append(answer.json()["job_id"])
                    if refused_for is None and len(answers) > 1:
                        refused_for = time.monotonic() - killed_at
                else:
                    time.sleep(0.2)
            codes = {a.status_code for a in answers}
            assert codes <= {202, 503, 599}, [a.text for a in answers if a.status_code >= 500]
            refused = [a for a in answers if a.status_code == 503]
            assert refused, "no submit fell in the failover: the test proved nothing"
            assert all(a.headers.get("Retry-After") for a in refused)
            assert answers[-1].status_code == 202, "the API never took jobs again"
            assert cluster.master_port() != old_master
            print(f"failover: {len(refused)} submits refused, 202 again after {refused_for:.1f} s")

            jobs = wait_all_terminal(api, accepted, timeout=90)
            print(f"failover: worker node restarts {restarts}")
            assert {job["status"] for job in jobs.values()} == {"succeeded"}
            for poller in pollers:
                poller.join(timeout=130)
            assert outcomes == dict.fromkeys(polled, "succeeded")
            # Flower follows the sentinels to the new master too.
            wait_until(lambda: _flower_sees_the_queue(flower), timeout=30, what="Flower")
            # Two replicas: the one not promoted follows the new master.
            new_master = cluster.client(cluster.master_port())
            wait_until(
                lambda: new_master.info("replication")["connected_slaves"] >= 1,
                timeout=30,
                what="a replica of the new master",
            )
        assert "Traceback" not in (tmp_path / "api.log").read_text()
        # kombu logs an ack the dead master never answered (CRITICAL, with its traceback); the
        # job's outcome is in the job store already, and a redelivery is skipped.
        for log in sorted(tmp_path.glob("worker.*.log")):
            records = re.split(r"\n(?=\[\d{4}-)", log.read_text())
            tracebacks = [r.split("\n")[0] for r in records if "Traceback" in r]
            known = ("Couldn't ack", "Unrecoverable error", "Error on stopping Hub")
            assert all(any(k in first for k in known) for first in tracebacks), tracebacks
    finally:
        cluster.stop()


def test_a_job_no_replica_took_is_refused_and_not_kept(tmp_path: Path) -> None:
    """REDIS_WAIT_REPLICAS on a master with no replica: the submit is a 503 with Retry-After
    after REDIS_WAIT_TIMEOUT_MS, and neither the job nor its queue message stays behind."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        env = service_env(redis.url, REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT_MS="200")
        with api_server(env, tmp_path / "api.log") as api:
            answer = httpx.post(
                f"{api}/api/v1/jobs", files={"file": ("g.png", encode(gradient(), "PNG"))}
            )
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"]
            assert "replica" in answer.json()["message"]
            client = redis.client()
            assert client.keys("imgclf:job:*") == []
            assert client.keys("imgclf:image:*") == []
            assert client.llen("imgclf") == 0
            assert httpx.get(f"{api}/api/v1/queue").json()["queued"] == 0
    finally:
        redis.stop()

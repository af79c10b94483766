"""Redis, the API and two worker nodes as separate hosts (network namespaces, `tests.netns`).

A worker host cut off the network mid-run, its processes alive, loses and strands no job, and
takes jobs again once it is back; the API host restarted mid-run loses none either.
IMGCLF_PARTITION_ROUNDS (default 3) sets how many cuts, each at a random instant of the run.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis

from scripts.processes import running
from tests.integration.jobs_helpers import submit_many, wait_all_terminal
from tests.netns import Host, Rig, namespaces_available, rig
from tests.processes import service_env, wait_until, worker_command

_unavailable = namespaces_available()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_unavailable is not None, reason=str(_unavailable)),
]

PASSWORD = "rig-secret"
API = "http://api"  # reached through the API host's Unix socket
ROUNDS = int(os.environ.get("IMGCLF_PARTITION_ROUNDS", "3"))
# Heartbeats expire after 3 x 2 s, so a cut-off node's jobs go to the other within seconds.
# A node whose consumer is stuck stops after 20 s (the default, 60 s, would make rounds long).
FAST_HEARTBEATS = {
    "WORKER_HEARTBEAT_SECONDS": "2",
    "RECOVERY_INTERVAL_SECONDS": "1",
    "WORKER_STALL_SECONDS": "20",
}
CUT_SECONDS = 12
# Jobs per batch submit in the cut test (one queue message each, up to GROUP_MAX_JOBS).
GROUP = 16


@dataclass
class Cluster:
    rig: Rig
    api_socket: Path
    redis: redis.Redis
    env: dict[str, str]
    workdir: Path
    workers: dict[str, subprocess.Popen[bytes]]
    stack: contextlib.ExitStack

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=API, transport=httpx.HTTPTransport(uds=str(self.api_socket)), timeout=30
        )

    def start_api(self) -> subprocess.Popen[bytes]:
        self.api_socket.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "uvicorn", "api.main:app", "--uds", str(self.api_socket),
                "--log-level", "warning"]  # fmt: skip
        proc = self.stack.enter_context(
            running(self.rig.hosts["api"].command(argv), env=self.env, log=self._log("api"))
        )
        with self.http() as http:
            wait_until(lambda: _answers(http, "/health"), timeout=60, what="the API host")
        return proc

    def start_worker(self, name: str) -> None:
        argv = worker_command(concurrency=1, hostname=name)
        self.workers[name] = self.stack.enter_context(
            running(self.rig.hosts[name].command(argv), env=self.env, log=self._log(name))
        )

    def _log(self, name: str) -> Path:
        count = len(list(self.workdir.glob(f"{name}*.log")))
        return self.workdir / f"{name}-{count}.log"

    def supervise(self) -> list[str]:
        """Start again any node that stopped itself as stalled; which ones did."""
        restarted = []
        for name, proc in list(self.workers.items()):
            if proc.poll() == 75:
                restarted.append(name)
                self.start_worker(name)
        return restarted

    def ran_on(self, job_id: str) -> str:
        owner = self.redis.hget(f"imgclf:job:{job_id}", "worker") or b"?"
        return owner.decode().split(":")[0]


def _answers(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The hosts, running; with a parameter, every Redis connection goes through a proxy on the
    Redis host that delays each direction by that many milliseconds."""
    delay_ms = getattr(request, "param", 0)
    with rig(["redis", "api", "w1", "w2"]) as hosts, contextlib.ExitStack() as stack:
        redis_host = hosts.hosts["redis"]
        socket_path = tmp_path / "redis.sock"
        redis_argv = ["redis-server", "--bind", redis_host.address, "--port", "6379",
                      "--unixsocket", str(socket_path), "--unixsocketperm", "700",
                      "--requirepass", PASSWORD, "--save", "", "--dir", str(tmp_path)]  # fmt: skip
        stack.enter_context(running(redis_host.command(redis_argv), env=dict(os.environ),
                                    log=tmp_path / "redis.log"))  # fmt: skip
        client = redis.Redis(unix_socket_path=str(socket_path), password=PASSWORD)
        wait_until(lambda: socket_path.exists() and bool(client.ping()), timeout=10, what="redis")
        port = 6379
        if delay_ms:
            port = 6380
            proxy = [sys.executable, "-m", "tests.delay_proxy", f"{redis_host.address}:{port}",
                     f"{redis_host.address}:6379", str(delay_ms)]  # fmt: skip
            stack.enter_context(running(redis_host.command(proxy), env=dict(os.environ),
                                        log=tmp_path / "proxy.log"))  # fmt: skip
        url = f"redis://:{PASSWORD}@{redis_host.address}:{port}/0"
        made = Cluster(hosts, tmp_path / "api.sock", client, service_env(url, **FAST_HEARTBEATS),
                       tmp_path, {}, stack)  # fmt: skip
        made.start_api()
        made.start_worker("w1")
        made.start_worker("w2")
        with made.http() as http:
            wait_until(
                lambda: http.get("/ready").json().get("workers_online") == 2,
                timeout=90,
                what="2 nodes",
            )
        yield made


def _settle(cluster: Cluster, ids: list[str], *, timeout: float) -> dict[str, dict]:
    jobs = wait_all_terminal(API, ids, timeout=timeout, uds=str(cluster.api_socket))
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    labels = {job["result"]["predictions"][0]["label"] for job in jobs.values()}
    assert len(labels) == 1, f"one image, several answers: {labels}"
    return jobs


def _takes_jobs_again(cluster: Cluster, node: str, image: bytes) -> None:
    """Jobs go on being submitted until one runs on `node` (started again if it stalled)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        cluster.supervise()
        ids = submit_many(API, image, 8, clients=4, uds=str(cluster.api_socket))
        _settle(cluster, ids, timeout=60)
        if any(cluster.ran_on(job_id) == node for job_id in ids):
            return
    pytest.fail(f"{node} took no job within 120 s of rejoining")


def test_jobs_spread_over_both_worker_hosts(cluster: Cluster, labrador_bytes: bytes) -> None:
    ids = submit_many(API, labrador_bytes, 40, clients=8, uds=str(cluster.api_socket))
    _settle(cluster, ids, timeout=60)
    assert {cluster.ran_on(job_id) for job_id in ids} == {"w1", "w2"}


@pytest.mark.timeout(300 + 150 * ROUNDS)
def test_a_worker_host_cut_off_mid_run_loses_and_strands_nothing(
    cluster: Cluster, labrador_bytes: bytes
) -> None:
    rng = random.Random(os.environ.get("IMGCLF_PARTITION_SEED"))
    cut: Host = cluster.rig.hosts["w1"]
    taken_over = 0
    for _ in range(ROUNDS):
        # A long queue (single submits no longer make one: the nodes keep up with them), of
        # groups: the node may be fetching, running, storing or acking several jobs at once.
        ids = submit_many(API, labrador_bytes, 480, clients=4, uds=str(cluster.api_socket),
                          per_request=GROUP)  # fmt: skip
        wait_until(lambda: any(cluster.ran_on(i.decode()) == "w1"
                               for i in cluster.redis.smembers("imgclf:running")),
                   timeout=60, what="w1 at work")  # fmt: skip
        time.sleep(rng.uniform(0.0, 0.5))
        cut.cut()
        cut_at = time.time()
        # What w1 held when it went (it can change nothing in Redis now): jobs it had claimed.
        held = [m.decode() for m in cluster.redis.smembers("imgclf:running")]
        held = [i for i in held if cluster.ran_on(i) == "w1"]
        time.sleep(CUT_SECONDS)
        cut.rejoin()
        jobs = _settle(cluster, ids, timeout=120)
        again = [i for i in held if i in jobs and cluster.ran_on(i) == "w2"]
        taken_over += len(again)
        settled = time.monotonic()
        _takes_jobs_again(cluster, "w1", labrador_bytes)
        ended = {
            i: datetime.fromisoformat(job["finished_at"]).timestamp() for i, job in jobs.items()
        }
        recovered = max((ended[i] - cut_at for i in again), default=0.0)
        print(
            f"cut: {len(again)} job(s) run again, done {recovered:.1f} s after the cut; all done "
            f"{max(ended.values()) - cut_at:.1f} s after it; w1 took jobs again within "
            f"{time.monotonic() - settled:.1f} s of that"
        )
    # A cut with jobs in flight on the node: the other node ran them again.
    assert taken_over >= 1
    with cluster.http() as http:
        wait_until(
            lambda: http.get("/ready").json().get("workers_online") == 2, timeout=60, what="2"
        )
    finished = cluster.redis.hgetall("imgclf:stats:finished")
    assert set(finished) == {b"succeeded"}, finished


def test_the_api_host_restarted_mid_run_loses_nothing(
    cluster: Cluster, labrador_bytes: bytes
) -> None:
    ids = submit_many(API, labrador_bytes, 30, clients=4, uds=str(cluster.api_socket))
    api_pid = next(p for p in _pids_on(cluster.api_socket))
    os.kill(api_pid, signal.SIGKILL)
    cluster.start_api()
    ids += submit_many(API, labrador_bytes, 30, clients=4, uds=str(cluster.api_socket))
    _settle(cluster, ids, timeout=90)


@pytest.mark.parametrize("cluster", [0, 5], indirect=True, ids=["no-delay", "5ms-each-way"])
def test_latency_across_hosts(cluster: Cluster, labrador_bytes: bytes) -> None:
    """Idle submit-to-result latency from the API host's socket, every Redis round trip
    crossing the bridge (and the delaying proxy); printed for docs/SCALING.md."""
    latencies = []
    with cluster.http() as http:
        for _ in range(30):
            began = time.perf_counter()
            answer = http.post(
                "/api/v1/jobs", params={"wait": 10}, files={"file": ("l.jpg", labrador_bytes)}
            )
            latencies.append(1000 * (time.perf_counter() - began))
            assert answer.json()["status"] == "succeeded", answer.text
    latencies.sort()
    print(f"submit->result across hosts: p50 {latencies[15]:.1f} ms, p90 {latencies[27]:.1f} ms")


def _pids_on(socket_path: Path) -> Iterator[int]:
    """Processes whose command line names `socket_path` (the API's uvicorn)."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if (
                entry.name.isdigit()
                and b"uvicorn" in b" ".join(argv)
                and str(socket_path).encode() in argv
            ):
                yield int(entry.name)

"""A Redis, an API and worker nodes started one by one, for the fault tests."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.processes import RedisServer, running, wait_until, worker_command

# Short broker timeouts keep the node-kill test bounded; the sweep, not the visibility timeout,
# is what recovers the jobs that were running.
FAST = {
    "TASK_SOFT_TIME_LIMIT_SECONDS": "10",
    "TASK_TIME_LIMIT_SECONDS": "15",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "30",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "RECOVERY_INTERVAL_SECONDS": "1",
}


@dataclass
class Rig:
    redis: RedisServer
    api: str
    env: dict[str, str]
    tmp: Path
    stack: ExitStack

    def start_worker(self, name: str, *, concurrency: int = 2) -> subprocess.Popen[bytes]:
        proc = self.stack.enter_context(
            running(
                worker_command(concurrency=concurrency, hostname=name),
                env=self.env,
                log=self.tmp / f"{name}.log",
            )
        )
        wait_until(
            lambda: httpx.get(f"{self.api}/ready").json()["workers_online"] >= concurrency,
            timeout=60,
            what=f"worker {name}",
        )
        return proc

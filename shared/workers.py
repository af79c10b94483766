"""Worker presence: each worker process with a loaded model keeps its entry in one sorted set
alive, scored by when it expires on Redis's own clock.

The API's `/ready` and model info read it instead of broadcasting to Celery, which is slow and
blocks; a process that dies simply stops refreshing its entry and drops out. One sorted set
costs the same however many other keys Redis holds (a SCAN over a day of jobs did not), and
Redis's clock makes expiry independent of how far the nodes' clocks drift apart.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

import redis
from pydantic import BaseModel, ValidationError

from shared.jobs.keys import WORKER_INFO_KEY, WORKERS_KEY
from shared.jobs.scripts import load
from shared.metrics_dir import process_alive
from shared.model_cards import ORIGINAL_MODEL
from shared.redis_client import store_errors

log = logging.getLogger(__name__)

# The exit status of a worker node that stopped because its consumer was stuck
# (`worker.watchdog`): EX_TEMPFAIL, a supervisor should start it again.
STALLED_EXIT_CODE = 75

_BEAT = load("heartbeat").body
_ALIVE = load("workers_alive").body
_PRUNE = load("workers_prune").body


class ServedModel(BaseModel):
    """A model a worker process serves: its name, card version and file's sha256."""

    name: str
    version: str
    sha256: str


class WorkerInfo(BaseModel):
    """What a live worker process reports about itself and its models."""

    worker_id: str
    hostname: str
    pid: int
    # The first of its models (all a process served before models were data).
    model_name: str
    model_sha256: str
    # Every model it serves (empty from older releases: then the one above).
    models: list[ServedModel] = []
    runtime: str
    execution_provider: str
    threads: int
    model_load_seconds: float
    # The pid of the node's main process that forked this one (0 from older releases).
    node_pid: int = 0


def serves(info: WorkerInfo, model: str) -> bool:
    """Whether a live worker process serves `model`."""
    if not info.models:
        return model == ORIGINAL_MODEL
    return any(served.name == model for served in info.models)


def new_worker_id() -> str:
    """An id no other worker process ever had: the host, the pid and a random part. A container
    restarted in place (a restart policy, Kubernetes restarting a pod's container) keeps its
    hostname and, in its fresh PID namespace, often its pids: a new process under a dead one's
    id would keep the dead one's jobs alive in the recovery sweep's eyes for ever."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@store_errors
def beat(client: redis.Redis, info: WorkerInfo, *, ttl_seconds: float) -> None:
    """Announce (or refresh) a live worker process."""
    keys = [WORKERS_KEY, WORKER_INFO_KEY]
    args: list[str | int] = [int(ttl_seconds * 1000), info.worker_id, info.model_dump_json()]
    client.register_script(_BEAT)(keys=keys, args=args)


@store_errors
def leave(client: redis.Redis, worker_id: str) -> None:
    """Withdraw a worker process at shutdown, without waiting for its entry to expire."""
    with client.pipeline(transaction=True) as pipe:
        pipe.zrem(WORKERS_KEY, worker_id)
        pipe.hdel(WORKER_INFO_KEY, worker_id)
        pipe.execute()


@store_errors
def alive(client: redis.Redis) -> list[WorkerInfo]:
    """Every worker process whose heartbeat has not expired; malformed entries (another
    release's, or garbage) are skipped with a warning rather than failing the caller."""
    raw: list[bytes | None] = client.register_script(_ALIVE)(keys=[WORKERS_KEY, WORKER_INFO_KEY])
    live = []
    for value in raw:
        if value is None:
            continue
        try:
            live.append(WorkerInfo.model_validate_json(value))
        except ValidationError as exc:
            log.warning("skipped a malformed worker heartbeat: %s", exc.errors()[0]["msg"])
    return live


@store_errors
def prune(client: redis.Redis) -> int:
    """Forget the entries of processes whose heartbeat expired (the sweeper's chore)."""
    return int(client.register_script(_PRUNE)(keys=[WORKERS_KEY, WORKER_INFO_KEY]))


def forget_dead_children(client: redis.Redis, *, hostname: str, node_pid: int) -> list[str]:
    """Withdraw the entries of this node's own processes that have died (a SIGKILL, the OOM
    killer), without waiting for them to expire: their jobs are then recovered at once."""
    gone = [
        info.worker_id
        for info in alive(client)
        if info.hostname == hostname and info.node_pid == node_pid and not process_alive(info.pid)
    ]
    for worker_id in gone:
        leave(client, worker_id)
    return gone

"""Probes for a worker node run by a supervisor (Kubernetes exec probes), from its heartbeats.

    python -m worker.probe ready   # 0 once a process of this host has the model loaded and
                                   # its node takes jobs (the heartbeat `/ready` counts)
    python -m worker.probe live    # 1 only when Redis answers and this host has no live
                                   # process: a Redis outage is not the node's fault, and
                                   # restarting every node for it would only add cold starts

A node whose consumer is stuck while its processes heartbeat stops by itself
(`worker.watchdog`); these probes cover a node whose processes stopped heartbeating.
"""

from __future__ import annotations

import socket
import sys

from shared import workers
from shared.errors import StoreUnavailableError
from shared.redis_client import connect
from shared.settings import get_settings


def live_here() -> int | None:
    """Live worker processes of this host; None when Redis cannot be asked."""
    client = connect(get_settings())
    try:
        return sum(info.hostname == socket.gethostname() for info in workers.alive(client))
    except StoreUnavailableError:
        return None
    finally:
        client.close()


def main(argv: list[str]) -> int:
    if argv not in (["ready"], ["live"]):
        print("usage: python -m worker.probe ready|live", file=sys.stderr)
        return 2
    count = live_here()
    if argv == ["ready"]:
        print(f"{count} live process(es) on this host" if count is not None else "Redis down")
        return 0 if count else 1
    if count == 0:
        print("Redis answers, and no process of this host heartbeats", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The Lua scripts behind the job store's state changes, each in its own file under `lua/`, each
run atomically inside Redis.

A script's head documents its KEYS, ARGV and reply; `--! include NAME` lines pull in the shared
pieces of `lua/includes/` (Redis's clock, the queued bookkeeping, the finish event, the
webhook). They are read once, at import, and called by SHA (`EVALSHA`); `BY_SHA` lets the
store load one that Redis has lost (`steps.send`).

Images never pass through Lua: a half-megabyte argument or reply costs Redis far more inside a
script than a plain SET or GET, so the store sends them beside the scripts in the same
MULTI/EXEC transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shared.jobs.keys import COLLECTION_PREFIX

LUA = Path(__file__).with_name("lua")
_INCLUDE = re.compile(r"^--! include (\w+)$", re.MULTILINE)

# A finish event carries the job's JSON up to this size, its id alone above it: every API
# process receives every event (a result with top_k in the hundreds is ~75 KB at 1000).
MAX_ANNOUNCED_JOB_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, called by its SHA1 (`EVALSHA`) and loaded again where Redis lost it."""

    name: str
    body: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())  # noqa: S324

    def call(self, keys: Sequence[str], args: Sequence[object]) -> tuple[object, ...]:
        """The `EVALSHA` command that runs this script on `keys` and `args`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


def load(name: str) -> Script:
    """`lua/<name>.lua` with its includes in place."""
    source = (LUA / f"{name}.lua").read_text()
    body = _INCLUDE.sub(lambda found: (LUA / "includes" / f"{found[1]}.lua").read_text(), source)
    constants = f"local MAX_ANNOUNCED = {MAX_ANNOUNCED_JOB_BYTES}\n"
    constants += f"local COLLECTION_PREFIX = '{COLLECTION_PREFIX}'\n"
    return Script(name, constants + body)


ENQUEUE = load("enqueue")
CLAIM = load("claim")
FINISH = load("finish")
CANCEL = load("cancel")
CALLBACK_STATE = load("callback_state")
WITHDRAW = load("withdraw")
# Collections'.
OPEN_COLLECTION = load("open_collection")
COLLECT = load("collect")
COLLECT_FAILED = load("collect_failed")
CLOSE_COLLECTION = load("close_collection")
# The recovery sweep's.
REQUEUE = load("requeue")
RECONCILE = load("reconcile")
REPUBLISH = load("republish")

BY_SHA = {
    script.sha: script
    for script in (
        ENQUEUE,
        CLAIM,
        FINISH,
        CANCEL,
        CALLBACK_STATE,
        WITHDRAW,
        OPEN_COLLECTION,
        COLLECT,
        COLLECT_FAILED,
        CLOSE_COLLECTION,
        REQUEUE,
        RECONCILE,
        REPUBLISH,
    )
}

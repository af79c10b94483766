"""The I/O-free core's primitives: a round trip (`Step`), an operation (a generator of steps),
and `send`, the one place where a lost script cache (NOSCRIPT) is handled."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from shared.jobs import scripts

T = TypeVar("T")

Command = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Step:
    """Redis commands sent in one round trip, as one MULTI/EXEC transaction when `atomic`."""

    commands: tuple[Command, ...]
    atomic: bool = False


# An operation yields steps, is sent each step's replies (a list, one per command) and returns
# its outcome. A runner throws a step's `redis.ResponseError` into it instead of a reply.
Operation = Generator[Step, list[Any], T]


def send(*commands: Command, atomic: bool = False) -> Operation[list[Any]]:
    """One round trip; where Redis lost the scripts it calls (a restart), they are loaded and
    the step is sent again. Scripts go by SHA without redis-py's per-call `SCRIPT EXISTS`."""
    step = Step(commands, atomic=atomic)
    try:
        return (yield step)
    except redis.exceptions.NoScriptError:
        used = {command[1] for command in commands if command[0] == "EVALSHA"}
        yield Step(tuple(("SCRIPT", "LOAD", scripts.BY_SHA[sha].body) for sha in sorted(used)))
        return (yield step)

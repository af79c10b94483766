"""The I/O-free core's primitives: a round trip (`Step`), an operation (a generator of steps),
and `send`, the one place where a lost script cache (NOSCRIPT) is handled; `Exchange` drives an
operation for the runners."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


class LoadedScripts:
    """The scripts a runner's Redis is known to hold. A step that calls one not known is
    preceded by its `SCRIPT LOAD`: a transaction whose second script is missing still runs its
    other commands (Redis has no rollback), and sending it again after the load would run those
    twice. So a script missing at a call means Redis lost them all (a restart, a flush): the
    whole step fails as one, and `send` loads them and sends it again."""

    def __init__(self) -> None:
        self._shas: set[str] = set()

    def loads_for(self, step: Step) -> Step | None:
        """The `SCRIPT LOAD`s to send before `step`, if any (then taken as done)."""
        missing = {c[1] for c in step.commands if c[0] == "EVALSHA"} - self._shas
        if not missing:
            return None
        self._shas |= missing
        return Step(tuple(("SCRIPT", "LOAD", scripts.BY_SHA[sha].body) for sha in sorted(missing)))

    def forget(self) -> None:
        """Redis answered NOSCRIPT: it holds none of them any more."""
        self._shas.clear()


class Exchange(Generic[T]):
    """Drives one operation: `step` is what to send next, None once it has returned `value`."""

    def __init__(self, operation: Operation[T]) -> None:
        self._operation = operation
        self.step: Step | None = None
        self.value: T
        self._advance(None, None)

    def _advance(self, replies: list[Any] | None, error: redis.ResponseError | None) -> None:
        try:
            if error is not None:
                self.step = self._operation.throw(error)
            elif replies is None:
                self.step = next(self._operation)
            else:
                self.step = self._operation.send(replies)
        except StopIteration as done:
            self.step, self.value = None, done.value

    def reply(self, replies: list[Any]) -> None:
        self._advance(replies, None)

    def fail(self, error: redis.ResponseError) -> None:
        self._advance(None, error)

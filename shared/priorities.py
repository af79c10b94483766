"""Job priorities: each has a Celery queue of its own, and workers take them in this order."""

from __future__ import annotations

from typing import Literal

Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
DEFAULT_PRIORITY: Priority = "normal"


def per_priority(name: str, priority: str, *, separator: str) -> str:
    """`priority`'s own `name`: the normal priority keeps the name of the time before
    priorities, so queued work and its bookkeeping survive an upgrade."""
    return name if priority == DEFAULT_PRIORITY else f"{name}{separator}{priority}"


def queue_name(base: str, priority: str) -> str:
    """The Celery queue of `priority`; `base` (QUEUE_NAME) is the normal one's."""
    return per_priority(base, priority, separator=".")

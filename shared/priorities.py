"""Job priorities: each has a Celery queue of its own, and workers take them in this order."""

from __future__ import annotations

from typing import Literal

Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
DEFAULT_PRIORITY: Priority = "normal"


def queue_name(base: str, priority: str) -> str:
    """The Celery queue of `priority`; `base` (QUEUE_NAME) is the normal one's, as it was before
    priorities, so queued work survives an upgrade."""
    return base if priority == DEFAULT_PRIORITY else f"{base}.{priority}"

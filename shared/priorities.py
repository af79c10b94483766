"""Job priorities and models: each model at each priority (a lane) has a Celery queue of its
own, and workers take the priorities in this order."""

from __future__ import annotations

from typing import Literal

from shared.model_cards import ORIGINAL_MODEL

Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
DEFAULT_PRIORITY: Priority = "normal"


def per_priority(name: str, priority: str, *, separator: str) -> str:
    """`priority`'s own `name`: the normal priority keeps the name of the time before
    priorities, so queued work and its bookkeeping survive an upgrade."""
    return name if priority == DEFAULT_PRIORITY else f"{name}{separator}{priority}"


def per_lane(name: str, model: str, priority: str, *, separator: str) -> str:
    """The lane of `model` at `priority`'s own `name`. SqueezeNet's (the original model's)
    lanes keep the names of the time before models were data, so that work queued then still
    runs; a model's name can be neither a priority's nor another queue's
    (`shared.model_cards.RESERVED_NAMES`)."""
    named = name if model == ORIGINAL_MODEL else f"{name}{separator}{model}"
    return per_priority(named, priority, separator=separator)


def queue_name(base: str, model: str, priority: str) -> str:
    """The Celery queue of `model`'s jobs at `priority`; `base` is QUEUE_NAME."""
    return per_lane(base, model, priority, separator=".")

"""Exponential backoff with full jitter, for loops and retries that meet a struggling Redis."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays that double from `first` up to `most` seconds, each drawn at random below its
    ceiling so that many processes recovering at once do not retry in step."""

    first: float = 0.2
    most: float = 30.0
    _failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        ceiling = min(self.most, self.first * 2**self._failures)
        self._failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._failures = 0

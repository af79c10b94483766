"""What every job-store script is made of: the `Script` type (called by SHA), Redis's clock, and
the helpers that keep the queued bookkeeping."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

# Redis's clock in milliseconds: TIME is {seconds, microseconds}. Scripts compare heartbeats and
# ages on it, so nodes whose clocks disagree still agree on who is alive.
SERVER_NOW_MS = "local t = redis.call('TIME'); local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, called by its SHA1 (`EVALSHA`) and loaded again where Redis lost it."""

    body: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())  # noqa: S324

    def call(self, keys: Sequence[str], args: Sequence[object]) -> tuple[object, ...]:
        """The `EVALSHA` command that runs this script on `keys` and `args`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


# Images never pass through Lua: a half-megabyte argument or reply costs Redis far more inside a
# script against microseconds for a plain SET or GET, so the store sends them beside the scripts
# in the same MULTI/EXEC transaction.

# The queued bookkeeping, five keys that always travel together, from KEYS[b] on: the queued
# indexes of the high, normal and low priorities (job id -> when queued, Redis's clock), which
# let the sweep find a queued job whose message was lost; the bytes of queued images
# (MAX_QUEUED_BYTES); and each queued job's bytes, to take off again. `by_priority` also picks a
# priority's key from any three keys laid out the same way (the claim watermarks).
QUEUED = """
local function by_priority(b, priority)
  if priority == 'high' then return KEYS[b] end
  if priority == 'low' then return KEYS[b + 2] end
  return KEYS[b + 1]
end
local function to_queued(b, id, size, now, priority)
  redis.call('ZADD', by_priority(b, priority), now, id)
  if redis.call('HSETNX', KEYS[b + 4], id, size) == 1 then
    redis.call('INCRBY', KEYS[b + 3], size)
  end
end
local function off_queued(b, id)
  local queued_at
  for i = b, b + 2 do
    local at = redis.call('ZSCORE', KEYS[i], id)
    if at then
      queued_at = at
      redis.call('ZREM', KEYS[i], id)
    end
  end
  local size = redis.call('HGET', KEYS[b + 4], id)
  if size then
    redis.call('DECRBY', KEYS[b + 3], size)
    redis.call('HDEL', KEYS[b + 4], id)
  end
  return queued_at
end
"""

"""Lua scripts behind the job store's state changes: each runs atomically inside Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field


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

# Runs after the images were SET in the same transaction.
# KEYS: queue list, then the job hash and image key of each job.
# ARGV: queue limit, TTL, field/value count per job, then per job: message, fields.
# Jobs and their queue messages are written together, all or none: a job never exists without
# the message that gets it run. Returns {1, queued before} or, over the limit (images removed
# again), {0, queued}.
ENQUEUE = Script("""
local queued = redis.call('LLEN', KEYS[1])
local jobs = (#KEYS - 1) / 2
if queued + jobs > tonumber(ARGV[1]) then
  for i = 1, jobs do redis.call('DEL', KEYS[2 * i + 1]) end
  return {0, queued}
end
local ttl, width, at = ARGV[2], tonumber(ARGV[3]), 4
for i = 1, jobs do
  redis.call('HSET', KEYS[2 * i], unpack(ARGV, at + 1, at + width))
  redis.call('EXPIRE', KEYS[2 * i], ttl)
  redis.call('LPUSH', KEYS[1], ARGV[at])
  at = at + 1 + width
end
return {1, queued}
""")

# KEYS: job hash, running set. ARGV: now, job id, worker id, max attempts.
# A job redelivered while 'running' (its worker died) runs again; a terminal one never does.
# The store reads the image in the same transaction, so a job costs a worker two round trips.
CLAIM = Script("""
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' and status ~= 'running' then return {status} end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[4]) then
  return {'exhausted'}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'worker', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('SADD', KEYS[2], ARGV[2])
local meta = redis.call('HMGET', KEYS[1], 'created_at', 'top_k')
return {'run', meta[1], meta[2]}
""")

# Terminal changes are announced on the events channel as "<job id> <job as JSON>", so that
# whoever long-polls the job has its final state without reading it back. Every API process
# receives every event, so a large job (a result with top_k in the hundreds: ~75 KB at 1000) is
# announced by its id alone, and its waiters read it back.
MAX_ANNOUNCED_JOB_BYTES = 16 * 1024
_ANNOUNCE = f"""
local function announce(channel, job_key, job_id)
  local flat, fields = redis.call('HGETALL', job_key), {{}}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  local job = cjson.encode(fields)
  if #job > {MAX_ANNOUNCED_JOB_BYTES} then
    redis.call('PUBLISH', channel, job_id)
  else
    redis.call('PUBLISH', channel, job_id .. ' ' .. job)
  end
end
"""

# KEYS: job hash, image, finished-stats hash, running set.
# ARGV: status, field ('result' or 'error'), its JSON, now, events channel, job id.
# Only the first terminal state is recorded; a late duplicate changes nothing.
FINISH = Script(
    _ANNOUNCE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'finished_at', ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('SREM', KEYS[4], ARGV[6])
announce(ARGV[5], KEYS[1], ARGV[6])
return 1
"""
)

# KEYS: job hash, image, finished-stats hash. ARGV: now, events channel, job id.
CANCEL = Script(
    _ANNOUNCE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HINCRBY', KEYS[3], 'canceled', 1)
announce(ARGV[2], KEYS[1], ARGV[3])
return 'ok'
"""
)


# KEYS: job hash, running set, queue list. ARGV: worker id that must still hold it, job id, message.
# The sweeper's move: a job whose worker process is gone goes back to 'queued' with a new queue
# message, unless another process has claimed it since (then `worker` differs) or it has finished.
REQUEUE = Script("""
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker')
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
return 1
""")


BY_SHA = {script.sha: script for script in (ENQUEUE, CLAIM, FINISH, CANCEL, REQUEUE)}

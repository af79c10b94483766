"""Lua scripts behind the job store's state changes: each runs atomically inside Redis."""

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

# Runs after the images were SET in the same transaction.
# KEYS: queue list, queued index, then the job hash and image key of each job.
# ARGV: queue limit, TTL, field/value count per job, then per job: message, job id, fields.
# Jobs and their queue messages are written together, all or none: a job never exists without
# the message that gets it run. The queued index (job id -> when queued, Redis's clock) lets the
# sweep find a queued job whose message was lost. Returns {1, queued before} or, over the limit
# (images removed again), {0, queued}.
ENQUEUE = Script(
    SERVER_NOW_MS
    + """
local queued = redis.call('LLEN', KEYS[1])
local jobs = (#KEYS - 2) / 2
if queued + jobs > tonumber(ARGV[1]) then
  for i = 1, jobs do redis.call('DEL', KEYS[2 * i + 2]) end
  return {0, queued}
end
local ttl, width, at = ARGV[2], tonumber(ARGV[3]), 4
for i = 1, jobs do
  redis.call('HSET', KEYS[2 * i + 1], unpack(ARGV, at + 2, at + 1 + width))
  redis.call('EXPIRE', KEYS[2 * i + 1], ttl)
  redis.call('LPUSH', KEYS[1], ARGV[at])
  redis.call('ZADD', KEYS[2], now, ARGV[at + 1])
  at = at + 2 + width
end
return {1, queued}
"""
)

# KEYS: job hash, running set, workers zset, queued index, claim watermark.
# ARGV: now, job id, worker id, max attempts.
# A job redelivered while 'running' runs again only when its owner process is gone (its heartbeat
# expired on Redis's clock) or is this very process; a terminal one never does. `attempts`
# counts starts, so past the first only takeovers from dead processes. The store reads the image
# in the same transaction, so a job costs a worker two round trips. The watermark is the latest
# queue time of a job claimed so far: the queue is first in, first out, so a job queued before it
# has had its message delivered (see RECONCILE).
CLAIM = Script(
    SERVER_NOW_MS
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' and status ~= 'running' then return {status} end
if status == 'running' then
  local owner = redis.call('HGET', KEYS[1], 'worker')
  if owner and owner ~= ARGV[3] then
    local expiry = redis.call('ZSCORE', KEYS[3], owner)
    if expiry and tonumber(expiry) > now then return {'busy'} end
  end
end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[4]) then
  return {'exhausted'}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'worker', ARGV[3],
  'claimed_ms', now)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('SADD', KEYS[2], ARGV[2])
local queued_at = redis.call('ZSCORE', KEYS[4], ARGV[2])
if queued_at then
  redis.call('ZREM', KEYS[4], ARGV[2])
  if tonumber(queued_at) > tonumber(redis.call('GET', KEYS[5]) or '0') then
    redis.call('SET', KEYS[5], queued_at)
  end
end
local meta = redis.call('HMGET', KEYS[1], 'created_at', 'top_k')
return {'run', meta[1], meta[2]}
"""
)

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

# KEYS: job hash, image, finished-stats hash, running set, queued index.
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
redis.call('ZREM', KEYS[5], ARGV[6])
announce(ARGV[5], KEYS[1], ARGV[6])
return 1
"""
)

# KEYS: job hash, image, finished-stats hash, queued index. ARGV: now, events channel, job id.
CANCEL = Script(
    _ANNOUNCE
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HINCRBY', KEYS[3], 'canceled', 1)
redis.call('ZREM', KEYS[4], ARGV[3])
announce(ARGV[2], KEYS[1], ARGV[3])
return 'ok'
"""
)


# KEYS: job hash, running set, queue list, workers zset, queued index.
# ARGV: worker id that must still hold it, job id, message, max running ms (0: no limit).
# The sweep's move: a job whose worker process is gone (its heartbeat expired), or that has run
# longer than any task may (the hard time limit would have ended it), goes back to 'queued' with a
# new queue message, unless another process has claimed it since (then `worker` differs) or it has
# finished. Returns 1 (owner gone), 2 (ran too long) or 0.
REQUEUE = Script(
    SERVER_NOW_MS
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
local expiry = redis.call('ZSCORE', KEYS[4], ARGV[1])
local outcome = 0
if not expiry or tonumber(expiry) <= now then
  outcome = 1
elseif tonumber(ARGV[4]) > 0 then
  local claimed = tonumber(redis.call('HGET', KEYS[1], 'claimed_ms') or now)
  if now - claimed > tonumber(ARGV[4]) then outcome = 2 end
end
if outcome == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'worker')
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[5], now, ARGV[2])
return outcome
"""
)

# KEYS: queued index, claim watermark, queue list, kombu's unacked hash.
# ARGV: grace ms, at most this many ids.
# Queued jobs whose message is lost: kombu pops a message before it records it as unacked, so a
# connection reset or a node's death in between loses it. A queued job is due once the queue
# list is empty or a job queued after it has been claimed (the list is first in, first out), and
# older than the grace; a due job whose message kombu does not hold as unacked (keyed by the job
# id, our delivery tag) has none left. Returns their ids.
RECONCILE = Script(
    SERVER_NOW_MS
    + """
local due = now - tonumber(ARGV[1])
if redis.call('LLEN', KEYS[3]) > 0 then
  due = math.min(due, tonumber(redis.call('GET', KEYS[2]) or '0') - 1)
end
local lost = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', due, 'LIMIT', 0, ARGV[2])) do
  if redis.call('HEXISTS', KEYS[4], id) == 0 then table.insert(lost, id) end
end
return lost
"""
)

# KEYS: job hash, queued index, queue list, kombu's unacked hash. ARGV: job id, message.
# Publishes a lost job's message again if it is still queued and still has none; forgets the
# index entry of a job that has gone (expired). Returns 1 when it published.
REPUBLISH = Script(
    SERVER_NOW_MS
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then return 0 end
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
"""
)


BY_SHA = {
    script.sha: script for script in (ENQUEUE, CLAIM, FINISH, CANCEL, REQUEUE, RECONCILE, REPUBLISH)
}

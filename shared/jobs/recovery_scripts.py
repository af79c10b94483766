"""The recovery sweep's Lua scripts: jobs of dead or overdue workers back to their queue, and
queued jobs whose message was lost found and published again."""

from __future__ import annotations

from shared.jobs.lua import QUEUED, SERVER_NOW_MS, Script

# KEYS: job hash, running set, the job's priority's queue list, workers zset, the queued
# bookkeeping (5).
# ARGV: worker id that must still hold it, job id, message, max running ms (0: no limit).
# The sweep's move: a job whose worker process is gone (its heartbeat expired), or that has run
# longer than any task may (the hard time limit would have ended it), goes back to 'queued' with a
# new queue message, unless another process has claimed it since (then `worker` differs) or it has
# finished. Returns 1 (owner gone), 2 (ran too long) or 0.
REQUEUE = Script(
    SERVER_NOW_MS
    + QUEUED
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
local size, priority = unpack(redis.call('HMGET', KEYS[1], 'size_bytes', 'priority'))
to_queued(5, ARGV[2], size or 0, now, priority)
return outcome
"""
)

# KEYS: one priority's queued index, claim watermark and queue list, kombu's unacked hash.
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

# KEYS: job hash, the job's priority's queue list, kombu's unacked hash, the queued bookkeeping
# (5). ARGV: job id, message.
# Publishes a lost job's message again if it is still queued and still has none; forgets the
# queued entry of a job that has gone (expired). Returns 1 when it published.
REPUBLISH = Script(
    SERVER_NOW_MS
    + QUEUED
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' then
  off_queued(4, ARGV[1])
  return 0
end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', by_priority(4, redis.call('HGET', KEYS[1], 'priority')), now, ARGV[1])
return 1
"""
)

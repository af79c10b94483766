-- The sweep's move: a running job whose worker process is gone (its heartbeat expired), or that
-- has run longer than any task may (the hard time limit would have ended it), goes back to
-- 'queued' with a message of its own, unless another process has claimed it since (then `worker`
-- differs) or it has finished.
--
-- KEYS: job hash, running set, the job's priority's queue list, workers zset, the queued
--       bookkeeping (5).
-- ARGV: worker id that must still hold it, job id, message, max running ms per job held (0: no
--       limit), '1' when the owner itself hands the job back (else '0').
--
-- A process that held several jobs may have run them one after another, so the limit grows
-- with how many it held. A death while it held several is charged to none of them (claim.lua):
-- the start it cost is given back, and the job comes back alone, its message its own. A live
-- owner hands back a job it could not finish because Redis failed it: no fault of the job's,
-- so its start is given back too.
-- Returns 1 (owner gone), 2 (ran too long), 3 (handed back) or 0.

--! include clock
--! include queued
--! include collection

local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[1] then return 0 end
local held = tonumber(redis.call('HGET', KEYS[1], 'claimed_n') or '1')
local expiry = redis.call('ZSCORE', KEYS[4], ARGV[1])
local outcome = 0
if ARGV[5] == '1' then
  outcome = 3
elseif not expiry or tonumber(expiry) <= now then
  outcome = 1
elseif tonumber(ARGV[4]) > 0 then
  local claimed = tonumber(redis.call('HGET', KEYS[1], 'claimed_ms') or now)
  if now - claimed > tonumber(ARGV[4]) * held then outcome = 2 end
end
if outcome == 0 then return 0 end
if outcome == 3 or (outcome == 1 and held > 1) then
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
redis.call('HSET', KEYS[1], 'status', 'queued')
collection_moved(KEYS[1], ARGV[2], 'running', 'queued')
redis.call('HDEL', KEYS[1], 'worker', 'msg', 'claimed_n')
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
local size, priority = unpack(redis.call('HMGET', KEYS[1], 'size_bytes', 'priority'))
to_queued(5, ARGV[2], size or 0, now, priority)
return outcome

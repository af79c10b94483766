-- Marks the jobs of one delivery running in this worker process: a group claimed at once.
--
-- KEYS: running set, workers zset, the claim watermarks (high, normal, low), the queued
--       bookkeeping (5), then each job's hash.
-- ARGV: now (the worker's clock, for started_at), job ids (one per hash), worker id, max
--       attempts, takeover ('1', or '0' from a process that has just seen Redis fail: every
--       heartbeat expired during the outage, dead ones cannot be told yet), the delivery's tag
--       (its message's task id).
--
-- Per job: {'run', created_at, top_k, trace context}, or why it does not run: its status when
-- terminal, 'missing' (expired, or refused when its group's message was written), 'moved' (put
-- back since, with a message of its own: it runs from that one), 'busy' (a live process holds
-- it), 'exhausted' (started max attempts times by processes that died: the caller fails it),
-- 'suspect' (see below).
--
-- A job redelivered while 'running' runs again only when its owner process is gone (its
-- heartbeat expired, on Redis's clock) or is this very process. `attempts` counts starts, so
-- past the first only takeovers from dead processes; but a process that died while it held a
-- group cannot say which of its jobs killed it, so such a death is charged to none of them: a
-- job taken over from it is not run in a group again ('suspect': the caller claims it alone),
-- and that lone start is what counts. A poison image thus fails alone after max attempts, and
-- its group-mates lose no attempt for it.
--
-- The watermark of a job's priority is the latest queue time of a job of that priority claimed
-- so far: each queue is first in, first out, so a job of that priority queued before it has had
-- its message delivered (see reconcile.lua).

--! include clock
--! include queued
--! include collection

local first, count = 11, #KEYS - 10
local worker, max_attempts, takeover = ARGV[count + 2], tonumber(ARGV[count + 3]), ARGV[count + 4]
local tag = ARGV[count + 5]
local replies = {}

local function claim(key, id)
  local status, carried_by = unpack(redis.call('HMGET', key, 'status', 'msg'))
  if not status then return {'missing'} end
  if status ~= 'queued' and status ~= 'running' then return {status} end
  if (carried_by or id) ~= tag then return {'moved'} end
  local charge = 1
  if status == 'running' then
    local owner = redis.call('HGET', key, 'worker')
    if owner and owner ~= worker then
      if takeover ~= '1' then return {'busy'} end
      local expiry = redis.call('ZSCORE', KEYS[2], owner)
      if expiry and tonumber(expiry) > now then return {'busy'} end
      if tonumber(redis.call('HGET', key, 'claimed_n') or '1') > 1 then
        if count > 1 then return {'suspect'} end
        charge = 0
      end
    end
  end
  local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
  if charge == 1 and attempts >= max_attempts then return {'exhausted'} end
  redis.call('HSET', key, 'status', 'running', 'started_at', ARGV[1], 'worker', worker,
    'claimed_ms', now, 'claimed_n', count)
  if charge == 1 then redis.call('HINCRBY', key, 'attempts', 1) end
  if status == 'queued' then collection_moved(key, id, 'queued', 'running') end
  redis.call('SADD', KEYS[1], id)
  local queued_at = off_queued(6, id)
  local watermark = by_priority(3, redis.call('HGET', key, 'priority'))
  if queued_at and tonumber(queued_at) > tonumber(redis.call('GET', watermark) or '0') then
    redis.call('SET', watermark, queued_at)
  end
  local meta = redis.call('HMGET', key, 'created_at', 'top_k', 'trace')
  return {'run', meta[1], meta[2], meta[3] or ''}
end

local claimed = {}
for i = 1, count do
  local key = KEYS[first + i - 1]
  replies[i] = claim(key, ARGV[i + 1])
  if replies[i][1] == 'run' then claimed[#claimed + 1] = key end
end
-- How many jobs the process holds together, for the sweep (a death charged to none of them).
if #claimed < count then
  for _, key in ipairs(claimed) do redis.call('HSET', key, 'claimed_n', #claimed) end
end
return replies

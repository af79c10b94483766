-- The queued bookkeeping, five keys that always travel together, from KEYS[b] on: the queued
-- indexes of the high, normal and low priorities (job id -> when queued, Redis's clock), which
-- let the sweep find a queued job whose message was lost and count the jobs waiting; the bytes
-- of queued images (MAX_QUEUED_BYTES); and each queued job's bytes, to take off again.
-- `by_priority` also picks a priority's key from any three keys laid out the same way (the claim
-- watermarks, the queue lists).
local function by_priority(b, priority)
  if priority == 'high' then return KEYS[b] end
  if priority == 'low' then return KEYS[b + 2] end
  return KEYS[b + 1]
end
local function to_queued(b, id, size, at, priority)
  redis.call('ZADD', by_priority(b, priority), at, id)
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

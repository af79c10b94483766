-- Publishes a lost job's message again, a message of its own, if it is still queued and still
-- has none; forgets the queued entry of a job that has gone (expired).
--
-- KEYS: job hash, the job's priority's queue list, kombu's unacked hash, the queued
--       bookkeeping (5).
-- ARGV: job id, message. Returns 1 when it published.

--! include clock
--! include queued

local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' then
  off_queued(4, ARGV[1])
  return 0
end
local tag = redis.call('HGET', KEYS[1], 'msg') or ARGV[1]
if redis.call('HEXISTS', KEYS[3], tag) == 1 then return 0 end
redis.call('HDEL', KEYS[1], 'msg')
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', by_priority(4, redis.call('HGET', KEYS[1], 'priority')), now, ARGV[1])
return 1

-- Forgets the entries of worker processes whose heartbeat expired; returns how many.
--
-- KEYS: workers zset, info hash.

--! include clock

local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(gone))
redis.call('HDEL', KEYS[2], unpack(gone))
return #gone

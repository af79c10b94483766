-- The info of every worker process whose entry has not expired (nil for an entry without one).
--
-- KEYS: workers zset, info hash.

--! include clock

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[2], unpack(ids))

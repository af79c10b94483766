-- A webhook delivery's progress, recorded only while the job exists (an HSET on an expired job
-- would make a hash without a TTL).
--
-- KEYS: job hash. ARGV: the callback state's JSON. Returns 1 when recorded.

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'callback', ARGV[1])
return 1

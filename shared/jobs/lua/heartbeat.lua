-- Announces (or refreshes) a live worker process, its entry expiring on Redis's clock.
--
-- KEYS: workers zset, info hash. ARGV: ttl ms, worker id, info JSON.

--! include clock

redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1

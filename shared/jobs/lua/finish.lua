-- Records a job's terminal state, once: a late duplicate changes nothing.
--
-- KEYS: job hash, image, finished-stats hash, running set, the queued bookkeeping (5), the
--       webhooks list.
-- ARGV: status, field ('result' or 'error'), its JSON, now, events channel, job id, TTL, the
--       failures lists' prefix, how many each keeps, the webhook message ('' for none).
--
-- A failed job keeps its image (it expires with the job) so that it can be retried, and joins
-- its owner's list of failures (the owner is an API key's digest, so the list's name is built
-- here from the job). Returns 1 when recorded, 0 when the job had ended or gone.

--! include announce
--! include queued
--! include webhook
--! include collection

local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' and status ~= 'queued' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'finished_at', ARGV[4])
if ARGV[1] == 'failed' then
  local failures = ARGV[8] .. (redis.call('HGET', KEYS[1], 'owner') or '')
  redis.call('ZADD', failures, ARGV[4], ARGV[6])
  redis.call('ZREMRANGEBYRANK', failures, 0, -1 - tonumber(ARGV[9]))
  redis.call('EXPIRE', failures, ARGV[7])
else
  redis.call('DEL', KEYS[2])
end
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('SREM', KEYS[4], ARGV[6])
off_queued(5, ARGV[6])
queue_webhook(KEYS[1], KEYS[10], ARGV[10])
collection_moved(KEYS[1], ARGV[6], status, ARGV[1])
announce(ARGV[5], KEYS[1], ARGV[6])
return 1

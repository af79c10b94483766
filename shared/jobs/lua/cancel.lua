-- Cancels a queued job. Its group's message, if it has one, stays: the claim skips it.
--
-- KEYS: job hash, image, finished-stats hash, the queued bookkeeping (5), the webhooks list.
-- ARGV: now, events channel, job id, the webhook message ('' for none).
--
-- The image stays (it expires with the job), so that a canceled job can be retried. Returns
-- 'ok', 'missing', or the status that refused it.

--! include announce
--! include queued
--! include webhook
--! include collection

local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1])
redis.call('HINCRBY', KEYS[3], 'canceled', 1)
off_queued(4, ARGV[3])
queue_webhook(KEYS[1], KEYS[9], ARGV[4])
collection_moved(KEYS[1], ARGV[3], 'queued', 'canceled')
announce(ARGV[2], KEYS[1], ARGV[3])
return 'ok'

-- Closes a collection (it takes no more images), and cancels it too when asked (unless every
-- job has ended: then it is complete); a collection whose jobs have all ended is settled here
-- (its webhook queued), since no job will end later.
--
-- KEYS: the collection's hash.
-- ARGV: now, '1' to cancel it (else '0').
--
-- Returns 1, or 0 when the collection has gone.

--! include collection

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local c = redis.call('HMGET', KEYS[1], 'closed_at', 'total', 'succeeded', 'failed', 'canceled')
local ended = tonumber(c[3] or '0') + tonumber(c[4] or '0') + tonumber(c[5] or '0')
-- A closed collection whose every job has ended is complete: canceling it changes nothing.
local complete = c[1] and ended >= tonumber(c[2] or '0')
redis.call('HSETNX', KEYS[1], 'closed_at', ARGV[1])
if ARGV[2] == '1' and not complete then redis.call('HSETNX', KEYS[1], 'canceled_at', ARGV[1]) end
collection_settled(KEYS[1])
return 1

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
local ended, total = collection_progress(KEYS[1])
-- A closed collection whose every job has ended is complete: canceling it changes nothing.
local complete = redis.call('HEXISTS', KEYS[1], 'closed_at') == 1 and ended >= total
redis.call('HSETNX', KEYS[1], 'closed_at', ARGV[1])
if ARGV[2] == '1' and not complete then redis.call('HSETNX', KEYS[1], 'canceled_at', ARGV[1]) end
collection_settled(KEYS[1])
return 1

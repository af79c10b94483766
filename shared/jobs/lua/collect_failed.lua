-- Records items of a collection that can never run (not an image, an unsupported format, too
-- many pixels) as failed jobs of it, each once: an item whose custom_id was added before keeps
-- the job it has. Such a job has ended already, so it joins the ended list too.
--
-- KEYS: the collection's hash, its items list, its ended list, then per item its job hash and
--       its custom_id's record (see enqueue.lua's Idempotency-Key records).
-- ARGV: TTL (s), field/value count per job, then per item: job id, the record's fingerprint,
--       the job's fields and values.
--
-- Returns per item the id of the job that stands for it: its own, or the earlier one's; none
-- where the collection has gone meanwhile.

--! include collection

if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local ttl, width = ARGV[1], tonumber(ARGV[2])
local replies, added, at = {}, 0, 3
for k = 4, #KEYS, 2 do
  local job, record, id = KEYS[k], KEYS[k + 1], ARGV[at]
  local seen = redis.call('HGET', record, 'jobs')
  if seen then
    replies[#replies + 1] = seen
  else
    redis.call('HSET', job, unpack(ARGV, at + 2, at + 1 + width))
    redis.call('EXPIRE', job, ttl)
    redis.call('HSET', record, 'fingerprint', ARGV[at + 1], 'state', 'done', 'jobs', id)
    redis.call('EXPIRE', record, ttl)
    collection_append(KEYS[1], KEYS[2], id)
    collection_append(KEYS[1], KEYS[3], id)
    added = added + 1
    replies[#replies + 1] = id
  end
  at = at + 2 + width
end
collection_joined(KEYS[1], 'failed', added)
return replies

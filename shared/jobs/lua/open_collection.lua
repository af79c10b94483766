-- Opens a collection, once per Idempotency-Key: a client that sends its create again (an answer
-- lost, a command started again) gets the collection it made then.
--
-- KEYS: the new collection's hash, the key's record (or a name never written).
-- ARGV: TTL (s), the request's fingerprint ('' without a key), then the hash's fields and values.
--
-- Returns {1} when opened; for a key seen before, {2} (another request's) or {3, its collection
-- id}.

if ARGV[2] ~= '' then
  local seen = redis.call('HMGET', KEYS[2], 'fingerprint', 'collection')
  if seen[1] then
    if seen[1] ~= ARGV[2] then return {2} end
    return {3, seen[2]}
  end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  local id = string.sub(KEYS[1], #COLLECTION_PREFIX + 1)
  redis.call('HSET', KEYS[2], 'fingerprint', ARGV[2], 'collection', id)
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return {1}

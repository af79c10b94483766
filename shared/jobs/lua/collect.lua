-- Adds jobs to their collection right after enqueue.lua, in the same transaction: the jobs it
-- accepted exist, those it refused (a full queue, a custom_id added before) do not. The items
-- list, the collection's every job in the order added, lives as long as the collection.
--
-- KEYS: the collection's hash, its items list, then each job's hash.
-- ARGV: each job's id.
--
-- Returns how many joined (none where the collection has gone meanwhile).

--! include collection

if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local added = 0
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    collection_append(KEYS[1], KEYS[2], ARGV[i - 2])
    added = added + 1
  end
end
collection_joined(KEYS[1], 'queued', added)
return added

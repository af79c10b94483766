-- A job of a collection carries its collection's counts with it: each change of status moves one
-- count in the collection's hash (fields named after the statuses), and an ending joins the
-- collection's list of ended jobs, which its results are read from, in order, and may settle
-- it. A collection that has gone (expired) is left alone. COLLECTION_PREFIX is set by the
-- loader.
-- Appends a job to one of a collection's lists, which live as long as the collection.
local function collection_append(collection, list, job_id)
  if redis.call('RPUSH', list, job_id) == 1 then
    redis.call('PEXPIRE', list, redis.call('PTTL', collection))
  end
end
-- Jobs that joined a collection: counted in all, and in their status.
local function collection_joined(collection, status, count)
  if count > 0 then
    redis.call('HINCRBY', collection, 'total', count)
    redis.call('HINCRBY', collection, status, count)
  end
end
local function collection_of(job_key)
  local id = redis.call('HGET', job_key, 'collection_id')
  if not id or id == '' then return nil end
  local collection = COLLECTION_PREFIX .. id
  if redis.call('EXISTS', collection) == 0 then return nil end
  return collection
end
-- Once a closed collection's every job has ended, its webhook (if it asked for one) is queued,
-- once: the message was written when it was opened, and names the webhooks list to push it on.
-- How many of a collection's jobs have ended, and how many it holds.
local function collection_progress(collection)
  local c = redis.call('HMGET', collection, 'total', 'succeeded', 'failed', 'canceled')
  return tonumber(c[2] or '0') + tonumber(c[3] or '0') + tonumber(c[4] or '0'),
    tonumber(c[1] or '0')
end
local function collection_settled(collection)
  local c = redis.call('HMGET', collection, 'closed_at', 'notified', 'callback_message',
    'webhooks')
  if not c[1] or c[1] == '' or c[2] or not c[3] or c[3] == '' then return end
  local ended, total = collection_progress(collection)
  if ended < total then return end
  redis.call('HSET', collection, 'notified', '1', 'callback', '{"status":"pending","attempts":0}')
  redis.call('LPUSH', c[4], c[3])
end
local function collection_moved(job_key, job_id, from, to)
  local collection = collection_of(job_key)
  if not collection then return end
  redis.call('HINCRBY', collection, from, -1)
  redis.call('HINCRBY', collection, to, 1)
  if to ~= 'queued' and to ~= 'running' then
    collection_append(collection, collection .. ':ended', job_id)
    collection_settled(collection)
  end
end
-- A queued job taken back (withdraw.lua) leaves its collection as if it never came.
local function collection_left(job_key, job_id)
  local collection = collection_of(job_key)
  if not collection then return end
  redis.call('HINCRBY', collection, 'queued', -1)
  redis.call('HINCRBY', collection, 'total', -1)
  redis.call('LREM', collection .. ':items', 1, job_id)
end

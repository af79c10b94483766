-- Queues the jobs of one or more requests, after their images were SET in the same transaction,
-- and one queue message per group of jobs (a group: up to GROUP_MAX_JOBS jobs of one priority,
-- from any of the requests).
--
-- KEYS: the queued bookkeeping (5), the queue lists (high, normal, low), each request's
--       Idempotency-Key record (or a name never written), then each job's hash and image key.
-- ARGV: queue limit (jobs per priority), queued bytes limit, TTL, the field/value count per
--       job, the number of requests, the number of groups; per group: priority, message, its
--       delivery tag; per request: fingerprint ('' without an Idempotency-Key), the record's
--       state ('done', or 'pending' until replicas hold the jobs), priority, its number of jobs;
--       per job (in request order): id, image bytes, group number, then its fields.
--
-- Each request is accepted or refused whole, on its own: one request's refusal never touches
-- another's jobs. An accepted request's jobs are written with the messages of their groups, so
-- a job never exists without the message that gets it run; its idempotency record with them,
-- so two requests with one key make one set of jobs. A group's message is pushed when any of its
-- jobs was accepted; it may name jobs of refused requests, which do not exist, and a worker skips.
--
-- Returns one reply per request: {1, jobs queued before}; over a limit (its images removed
-- again) {0, jobs queued, 'jobs'} or {0, bytes queued, 'bytes'}; for a key seen before (images
-- removed again) {2, 'reused'} (another request), {2, 'pending'} (still being accepted) or
-- {3, the job ids it made, comma-separated}.

--! include clock
--! include queued

local limit, byte_limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local width, requests, groups = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local group_at, request_at = 7, 7 + 3 * groups
local job_at, job_key = request_at + 4 * requests, 9 + requests
local used, replies = {}, {}

for r = 1, requests do
  local base = request_at + 4 * (r - 1)
  local fingerprint, state, priority = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local jobs = tonumber(ARGV[base + 3])
  local function refuse(...)
    for i = 0, jobs - 1 do redis.call('DEL', KEYS[job_key + 2 * i + 1]) end
    return {...}
  end
  local reply
  if fingerprint ~= '' then
    local seen = redis.call('HMGET', KEYS[8 + r], 'fingerprint', 'state', 'jobs')
    if seen[1] then
      if seen[1] ~= fingerprint then reply = refuse(2, 'reused')
      elseif seen[2] == 'pending' then reply = refuse(2, 'pending')
      else reply = refuse(3, seen[3]) end
    end
  end
  local queued = redis.call('ZCARD', by_priority(1, priority))
  if not reply and queued + jobs > limit then reply = refuse(0, queued, 'jobs') end
  if not reply then
    local adding, at = 0, job_at
    for i = 1, jobs do
      adding = adding + tonumber(ARGV[at + 1])
      at = at + 3 + width
    end
    local bytes = tonumber(redis.call('GET', KEYS[4]) or '0')
    if bytes + adding > byte_limit then reply = refuse(0, bytes, 'bytes') end
  end
  if not reply then
    local ids, at = {}, job_at
    for i = 0, jobs - 1 do
      local hash, group = KEYS[job_key + 2 * i], tonumber(ARGV[at + 2])
      local tag = ARGV[group_at + 3 * (group - 1) + 2]
      redis.call('HSET', hash, unpack(ARGV, at + 3, at + 2 + width))
      if tag ~= ARGV[at] then redis.call('HSET', hash, 'msg', tag) end
      redis.call('EXPIRE', hash, ttl)
      to_queued(1, ARGV[at], ARGV[at + 1], now, priority)
      used[group] = true
      ids[i + 1] = ARGV[at]
      at = at + 3 + width
    end
    if fingerprint ~= '' then
      local record = {'fingerprint', fingerprint, 'state', state, 'jobs', table.concat(ids, ',')}
      redis.call('HSET', KEYS[8 + r], unpack(record))
      redis.call('EXPIRE', KEYS[8 + r], ttl)
    end
    reply = {1, queued}
  end
  replies[r] = reply
  job_at = job_at + jobs * (3 + width)
  job_key = job_key + 2 * jobs
end

for g = 1, groups do
  if used[g] then
    local base = group_at + 3 * (g - 1)
    redis.call('LPUSH', by_priority(6, ARGV[base]), ARGV[base + 1])
  end
end
return replies

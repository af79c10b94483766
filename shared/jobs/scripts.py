"""Lua scripts behind the job store's state changes: each runs atomically inside Redis. The
recovery sweep's are in `shared.jobs.recovery_scripts`; `BY_SHA` knows them all."""

from __future__ import annotations

from shared.jobs.lua import QUEUED, SERVER_NOW_MS, Script
from shared.jobs.recovery_scripts import RECONCILE, REPUBLISH, REQUEUE

# Pushes a job's webhook message onto the webhooks list when the job has a callback URL, in the
# same script that ends the job, so no ended job misses its webhook. Its state starts `pending`.
_WEBHOOK = """
local function queue_webhook(job_key, webhooks, message)
  local url = redis.call('HGET', job_key, 'callback_url')
  if url and url ~= '' and message ~= '' then
    redis.call('HSET', job_key, 'callback', '{"status":"pending","attempts":0}')
    redis.call('LPUSH', webhooks, message)
  end
end
"""

# Runs after the images were SET in the same transaction.
# KEYS: the priority's queue list, the queued bookkeeping (5), the idempotency record (or a name
# never written), then the job hash and image key of each job.
# ARGV: queue limit, queued bytes limit, TTL, field/value count per job, the request's
# fingerprint ('' without an Idempotency-Key), the record's state ('done', or 'pending' until
# replicas hold the jobs), the priority, then per job: message, job id, image bytes, fields.
# Jobs and their queue messages are written together, all or none: a job never exists without
# the message that gets it run; the idempotency record is written with them, so two requests with
# one key make one set of jobs. Returns {1, queued before}; over a limit (images removed again)
# {0, jobs queued, 'jobs'} or {0, bytes queued, 'bytes'}; for a key seen before (images removed
# again) {2, 'reused'} (another request), {2, 'pending'} (still being accepted) or
# {3, the job ids it made, comma-separated}.
ENQUEUE = Script(
    SERVER_NOW_MS
    + QUEUED
    + """
local jobs, width = (#KEYS - 7) / 2, tonumber(ARGV[4])
local function refuse(...)
  for i = 1, jobs do redis.call('DEL', KEYS[2 * i + 7]) end
  return {...}
end
if ARGV[5] ~= '' then
  local seen = redis.call('HMGET', KEYS[7], 'fingerprint', 'state', 'jobs')
  if seen[1] then
    if seen[1] ~= ARGV[5] then return refuse(2, 'reused') end
    if seen[2] == 'pending' then return refuse(2, 'pending') end
    return refuse(3, seen[3])
  end
end
local queued = redis.call('LLEN', KEYS[1])
if queued + jobs > tonumber(ARGV[1]) then return refuse(0, queued, 'jobs') end
local adding, at = 0, 8
for i = 1, jobs do
  adding = adding + tonumber(ARGV[at + 2])
  at = at + 3 + width
end
local bytes = tonumber(redis.call('GET', KEYS[5]) or '0')
if bytes + adding > tonumber(ARGV[2]) then return refuse(0, bytes, 'bytes') end
at = 8
local ids = {}
for i = 1, jobs do
  redis.call('HSET', KEYS[2 * i + 6], unpack(ARGV, at + 3, at + 2 + width))
  redis.call('EXPIRE', KEYS[2 * i + 6], ARGV[3])
  redis.call('LPUSH', KEYS[1], ARGV[at])
  to_queued(2, ARGV[at + 1], ARGV[at + 2], now, ARGV[7])
  ids[i] = ARGV[at + 1]
  at = at + 3 + width
end
if ARGV[5] ~= '' then
  local state = {'fingerprint', ARGV[5], 'state', ARGV[6], 'jobs', table.concat(ids, ',')}
  redis.call('HSET', KEYS[7], unpack(state))
  redis.call('EXPIRE', KEYS[7], ARGV[3])
end
return {1, queued}
"""
)

# KEYS: job hash, running set, workers zset, the claim watermarks (high, normal, low), the queued
# bookkeeping (5).
# ARGV: now, job id, worker id, max attempts, takeover ('1', or '0' from a process that has just
# seen Redis fail: every heartbeat expired during the outage, dead ones cannot be told yet).
# A job redelivered while 'running' runs again only when its owner process is gone (its heartbeat
# expired on Redis's clock) or is this very process; a terminal one never does. `attempts`
# counts starts, so past the first only takeovers from dead processes. The store reads the image
# in the same transaction, so a job costs a worker two round trips. The watermark of the job's
# priority is the latest queue time of a job of that priority claimed so far: its queue is first
# in, first out, so a job of that priority queued before it has had its message delivered (see
# RECONCILE).
CLAIM = Script(
    SERVER_NOW_MS
    + QUEUED
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' and status ~= 'running' then return {status} end
if status == 'running' then
  local owner = redis.call('HGET', KEYS[1], 'worker')
  if owner and owner ~= ARGV[3] then
    if ARGV[5] ~= '1' then return {'busy'} end
    local expiry = redis.call('ZSCORE', KEYS[3], owner)
    if expiry and tonumber(expiry) > now then return {'busy'} end
  end
end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[4]) then
  return {'exhausted'}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1], 'worker', ARGV[3],
  'claimed_ms', now)
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('SADD', KEYS[2], ARGV[2])
local queued_at = off_queued(7, ARGV[2])
local watermark = by_priority(4, redis.call('HGET', KEYS[1], 'priority'))
if queued_at and tonumber(queued_at) > tonumber(redis.call('GET', watermark) or '0') then
  redis.call('SET', watermark, queued_at)
end
local meta = redis.call('HMGET', KEYS[1], 'created_at', 'top_k')
return {'run', meta[1], meta[2]}
"""
)

# Terminal changes are announced on the events channel as "<job id> <job as JSON>", so that
# whoever long-polls the job has its final state without reading it back. Every API process
# receives every event, so a large job (a result with top_k in the hundreds: ~75 KB at 1000) is
# announced by its id alone, and its waiters read it back.
MAX_ANNOUNCED_JOB_BYTES = 16 * 1024
_ANNOUNCE = f"""
local function announce(channel, job_key, job_id)
  local flat, fields = redis.call('HGETALL', job_key), {{}}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  local job = cjson.encode(fields)
  if #job > {MAX_ANNOUNCED_JOB_BYTES} then
    redis.call('PUBLISH', channel, job_id)
  else
    redis.call('PUBLISH', channel, job_id .. ' ' .. job)
  end
end
"""

# KEYS: job hash, image, finished-stats hash, running set, the queued bookkeeping (5), the
# webhooks list.
# ARGV: status, field ('result' or 'error'), its JSON, now, events channel, job id, TTL, the
# failures lists' prefix, how many each keeps, the webhook message ('' for none).
# Only the first terminal state is recorded; a late duplicate changes nothing. A failed job keeps
# its image (it expires with the job) so that it can be retried, and joins its owner's list of
# failures (the owner is an API key's digest, so the list's name is built here from the job).
FINISH = Script(
    _ANNOUNCE
    + QUEUED
    + _WEBHOOK
    + """
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
announce(ARGV[5], KEYS[1], ARGV[6])
return 1
"""
)

# KEYS: job hash, image, finished-stats hash, the queued bookkeeping (5), the webhooks list.
# ARGV: now, events channel, job id, the webhook message ('' for none).
# The image stays (it expires with the job), so that a canceled job can be retried.
CANCEL = Script(
    _ANNOUNCE
    + QUEUED
    + _WEBHOOK
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status ~= 'queued' then return status end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'finished_at', ARGV[1])
redis.call('HINCRBY', KEYS[3], 'canceled', 1)
off_queued(4, ARGV[3])
queue_webhook(KEYS[1], KEYS[9], ARGV[4])
announce(ARGV[2], KEYS[1], ARGV[3])
return 'ok'
"""
)


# KEYS: job hash. ARGV: the callback state's JSON.
# A webhook delivery's progress, recorded only while the job exists (an HSET on an expired job
# would make a hash without a TTL).
CALLBACK_STATE = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'callback', ARGV[1])
return 1
"""
)

# KEYS: job hash, image, queue list, the queued bookkeeping (5). ARGV: job id, message.
# Takes back a job whose submit was refused after ENQUEUE ran (no replica copied it in time): it
# goes as if it never came, message included, unless a worker has claimed it already (a message
# a worker has taken finds no job and is dropped). Returns 1 when it went.
WITHDRAW = Script(
    QUEUED
    + """
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('LREM', KEYS[3], 1, ARGV[2])
off_queued(4, ARGV[1])
return 1
"""
)


BY_SHA = {
    script.sha: script
    for script in (
        ENQUEUE,
        CLAIM,
        FINISH,
        CANCEL,
        REQUEUE,
        RECONCILE,
        REPUBLISH,
        WITHDRAW,
        CALLBACK_STATE,
    )
}

-- Takes back jobs whose submit was refused after enqueue.lua ran (no replica copied them in
-- time): they go as if they never came, messages included, unless a worker has claimed them
-- already (a message a worker has taken finds no job, and is dropped).
--
-- KEYS: the queued bookkeeping (5), the queue lists (high, normal, low), then each job's hash
--       and image.
-- ARGV: the number of messages, then each message's priority and body, then the job ids.
-- Returns how many jobs went.

--! include queued
--! include collection

local messages = tonumber(ARGV[1])
for m = 0, messages - 1 do
  redis.call('LREM', by_priority(6, ARGV[2 + 2 * m]), 1, ARGV[3 + 2 * m])
end
local gone = 0
for i = 2 + 2 * messages, #ARGV do
  local key = KEYS[9 + 2 * (i - 2 - 2 * messages)]
  if redis.call('HGET', key, 'status') == 'queued' then
    collection_left(key, ARGV[i])
    redis.call('DEL', key, KEYS[10 + 2 * (i - 2 - 2 * messages)])
    off_queued(1, ARGV[i])
    gone = gone + 1
  end
end
return gone

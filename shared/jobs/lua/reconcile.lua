-- Queued jobs whose message is lost: kombu pops a message before it records it as unacked, so a
-- connection reset or a node's death in between loses it.
--
-- KEYS: one priority's queued index, claim watermark and queue list, kombu's unacked hash.
-- ARGV: grace ms, at most this many ids, the prefix of job hashes' keys (the hash of a due job is
-- read by its id: the ids are found here).
--
-- A queued job is due once the queue list is empty or a job queued after it has been claimed
-- (the list is first in, first out), and older than the grace; a due job whose message (its
-- group's, named by its `msg`, or its own, named by its id: our delivery tags) kombu does not
-- hold as unacked has none left. Returns their ids.

--! include clock

local due = now - tonumber(ARGV[1])
if redis.call('LLEN', KEYS[3]) > 0 then
  due = math.min(due, tonumber(redis.call('GET', KEYS[2]) or '0') - 1)
end
local lost = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', due, 'LIMIT', 0, ARGV[2])) do
  local tag = redis.call('HGET', ARGV[3] .. id, 'msg') or id
  if redis.call('HEXISTS', KEYS[4], tag) == 0 then table.insert(lost, id) end
end
return lost

-- Terminal changes are announced on the events channel as "<job id> <job as JSON>", so that
-- whoever long-polls the job has its final state without reading it back. Every API process
-- receives every event, so a large job (a result with top_k in the hundreds) is announced by its
-- id alone, and its waiters read it back. MAX_ANNOUNCED is set by the loader.
local function announce(channel, job_key, job_id)
  local flat, fields = redis.call('HGETALL', job_key), {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  local job = cjson.encode(fields)
  if #job > MAX_ANNOUNCED then
    redis.call('PUBLISH', channel, job_id)
  else
    redis.call('PUBLISH', channel, job_id .. ' ' .. job)
  end
end

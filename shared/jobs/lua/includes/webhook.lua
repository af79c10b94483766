-- Pushes a job's webhook message onto the webhooks list when the job has a callback URL, in the
-- same script that ends the job, so no ended job misses its webhook. Its state starts `pending`.
local function queue_webhook(job_key, webhooks, message)
  local url = redis.call('HGET', job_key, 'callback_url')
  if url and url ~= '' and message ~= '' then
    redis.call('HSET', job_key, 'callback', '{"status":"pending","attempts":0}')
    redis.call('LPUSH', webhooks, message)
  end
end

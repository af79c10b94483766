-- Redis's clock in milliseconds: TIME is {seconds, microseconds}. Scripts compare heartbeats and
-- ages on it, so nodes whose clocks disagree still agree on who is alive.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)

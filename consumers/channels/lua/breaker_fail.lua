-- Count one retryable failure of a provider; open its circuit at the threshold.
-- KEYS[1]  the provider's breaker hash (streams/keys.py provider_breaker)
-- ARGV[1]  now (ms), ARGV[2] window (ms), ARGV[3] threshold, ARGV[4] open for (ms)
-- Returns the time (ms) the circuit is open until, 0 while it stays closed.
local key = KEYS[1]
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local threshold, open_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local since = tonumber(redis.call('HGET', key, 'since') or '0')
if now - since >= window then
  redis.call('HSET', key, 'since', now, 'failures', 0)
end
local failures = redis.call('HINCRBY', key, 'failures', 1)
if failures >= threshold then
  local until_ms = now + open_ms
  redis.call('HSET', key, 'open_until', until_ms, 'since', now, 'failures', 0)
  redis.call('PEXPIRE', key, open_ms + window)
  return until_ms
end
redis.call('PEXPIRE', key, window + open_ms)
return 0

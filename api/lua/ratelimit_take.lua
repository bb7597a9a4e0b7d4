-- Take tokens from a token bucket; the clock is the server's, so every API process agrees.
-- KEYS[1]  the bucket (hash: tokens, ts in ms)
-- ARGV[1]  capacity (burst), tokens
-- ARGV[2]  refill rate, tokens per millisecond
-- ARGV[3]  cost of this request, tokens
-- Returns {allowed (1/0), retry_after_ms, tokens_left (floor)}.
local bucket = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

-- Redis < 7 needs effects replication to write after reading the clock.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', bucket, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
end

local allowed = 0
local retry_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry_ms = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', bucket, 'tokens', string.format('%.6f', tokens), 'ts', now)
-- A bucket left alone refills completely in capacity / rate; keep it no longer.
redis.call('PEXPIRE', bucket, math.ceil(capacity / rate) + 1000)
return {allowed, retry_ms, math.floor(tokens)}

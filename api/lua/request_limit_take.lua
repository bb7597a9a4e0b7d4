-- Take tokens from a token bucket; the clock is the server's, so every API process agrees.
-- KEYS[1]  the bucket (hash: tokens, ts in ms)
-- ARGV[1]  capacity (burst), tokens
-- ARGV[2]  refill rate, tokens per millisecond
-- ARGV[3]  least to take: the cost of this request
-- ARGV[4]  most to take: the cost plus a lease the process spends locally afterwards
-- Returns {granted tokens (0 when refused), retry_after_ms, tokens left (floor)}.
local bucket = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local least = tonumber(ARGV[3])
local most = tonumber(ARGV[4])

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

local granted = 0
local retry_ms = 0
if tokens >= least then
  granted = math.min(math.floor(tokens), most)
  tokens = tokens - granted
else
  retry_ms = math.ceil((least - tokens) / rate)
end
redis.call('HSET', bucket, 'tokens', string.format('%.6f', tokens), 'ts', now)
-- A bucket left alone refills completely in capacity / rate; keep it no longer.
redis.call('PEXPIRE', bucket, math.ceil(capacity / rate) + 1000)
return {granted, retry_ms, math.floor(tokens)}

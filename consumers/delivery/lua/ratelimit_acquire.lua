-- Take `count` sends from every bucket, or from none: a sliding-window log.
--
-- Each bucket is a sorted set of the grants inside its window (score = Redis
-- server time in ms). A grant is allowed when every bucket holds fewer than
-- `limit - count + 1` grants younger than its window; then it is recorded in all
-- of them. Otherwise nothing is recorded and the caller learns the shortest wait
-- after which every bucket has room. All buckets of one call share a hash tag.
--
-- KEYS[i]          bucket i (sorted set)
-- ARGV[1]          grant token, unique per call (members are token:1..count)
-- ARGV[2]          count (>= 1)
-- ARGV[1 + 2i]     limit of bucket i (sends per window)
-- ARGV[2 + 2i]     window of bucket i, ms
-- Returns {1, 0, now_ms} when granted, {0, wait_ms, now_ms} when not.
local token = ARGV[1]
local count = tonumber(ARGV[2])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  if count > limit then
    return redis.error_reply('ERR count ' .. count .. ' exceeds limit ' .. limit)
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local excess = redis.call('ZCARD', key) + count - limit
  if excess > 0 then
    -- the excess-th oldest grant must leave the window before there is room
    local oldest = redis.call('ZRANGE', key, excess - 1, excess - 1, 'WITHSCORES')
    local free_at = tonumber(oldest[2]) + window
    if free_at - now > wait then
      wait = free_at - now
    end
  end
end

if wait > 0 then
  return {0, wait, now}
end

for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 + 2 * i])
  for j = 1, count do
    redis.call('ZADD', key, now, token .. ':' .. j)
  end
  redis.call('PEXPIRE', key, window)
end
return {1, 0, now}

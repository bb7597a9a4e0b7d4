-- Append a batch of events to one partition stream, with idempotency.
-- KEYS[1]      the partition stream
-- KEYS[2..]    one idempotency key per event that has one, in event order
-- ARGV[1]      dedupe window in milliseconds
-- ARGV[2]      number of events n
-- ARGV[3..]    per event three values: encoded event, event id, has_key (1/0)
-- Returns a flat array, per event: new (1) or duplicate (0), event id, position.
-- A duplicate answers the first append's id and position and appends nothing.
local stream = KEYS[1]
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
local k = 2
for i = 0, n - 1 do
  local payload = ARGV[3 + i * 3]
  local event_id = ARGV[4 + i * 3]
  local has_key = ARGV[5 + i * 3] == '1'
  local prev = false
  if has_key then
    prev = redis.call('GET', KEYS[k])
  end
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    out[#out + 1] = 0
    out[#out + 1] = string.sub(prev, 1, sep - 1)
    out[#out + 1] = string.sub(prev, sep + 1)
  else
    local position = redis.call('XADD', stream, '*', 'e', payload)
    if has_key then
      redis.call('SET', KEYS[k], event_id .. ' ' .. position, 'PX', window)
    end
    out[#out + 1] = 1
    out[#out + 1] = event_id
    out[#out + 1] = position
  end
  if has_key then
    k = k + 1
  end
end
return out

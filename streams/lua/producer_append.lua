-- Append a batch of events to one partition stream, with idempotency.
-- KEYS[1]      the partition stream
-- KEYS[2..]    one idempotency key per event that has one, in event order
-- ARGV[1]      dedupe window in milliseconds
-- ARGV[2]      number of events n
-- ARGV[3..]    per event two values: encoded event, and its event id when it has an
--              idempotency key (else the empty string)
-- Returns a flat array, per event: position, and the first append's event id for a
-- duplicate (else the empty string). A duplicate appends nothing.
local stream = KEYS[1]
local window = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local out = {}
local k = 2
for i = 0, n - 1 do
  local payload = ARGV[3 + i * 2]
  local keyed_id = ARGV[4 + i * 2]
  local prev = false
  if keyed_id ~= '' then
    prev = redis.call('GET', KEYS[k])
  end
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    out[#out + 1] = string.sub(prev, sep + 1)
    out[#out + 1] = string.sub(prev, 1, sep - 1)
  else
    local position = redis.call('XADD', stream, '*', 'e', payload)
    if keyed_id ~= '' then
      redis.call('SET', KEYS[k], keyed_id .. ' ' .. position, 'PX', window)
    end
    out[#out + 1] = position
    out[#out + 1] = ''
  end
  if keyed_id ~= '' then
    k = k + 1
  end
end
return out

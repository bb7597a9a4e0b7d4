-- Ack a batch and write its dead letters, in one step, only while holding the lease.
-- KEYS[1]  the partition stream
-- KEYS[2]  the partition's dead-letter stream
-- KEYS[3]  the partition's lease for the group
-- ARGV[1]  this consumer's name ("" = no lease check: `herald dlq` tools)
-- ARGV[2]  the consumer group
-- ARGV[3]  dead-letter stream cap (approximate MAXLEN)
-- ARGV[4]  number of dead letters d
-- ARGV[5 .. 4+3d]  per dead letter: position, reason, original bytes
-- ARGV[5+3d ..]    positions to ack (every entry of the batch)
-- Returns {acked, dead letters written}, or {-1, 0} when the lease is someone else's.
local stream, dlq, lease = KEYS[1], KEYS[2], KEYS[3]
local me, group, cap, d = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if me ~= '' and redis.call('GET', lease) ~= me then
  return {-1, 0}
end
for i = 0, d - 1 do
  local base = 5 + i * 3
  redis.call('XADD', dlq, 'MAXLEN', '~', cap, '*', 'group', group, 'position', ARGV[base],
    'reason', ARGV[base + 1], 'e', ARGV[base + 2])
end
local first = 5 + d * 3
local acked = 0
for from = first, #ARGV, 1000 do -- unpack() has a stack limit: ack in chunks
  acked = acked + redis.call('XACK', stream, group, unpack(ARGV, from, math.min(from + 999, #ARGV)))
end
return {acked, d}

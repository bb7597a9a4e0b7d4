-- Claim one page of a group's pending entries for this consumer, ids only (JUSTID:
-- delivery counts are not bumped; the re-read of the PEL that follows counts once).
-- KEYS[1]  the partition stream
-- ARGV[1]  the group
-- ARGV[2]  this consumer's name
-- ARGV[3]  min idle time in milliseconds
-- ARGV[4]  start id ("0-0" first, then the returned cursor)
-- ARGV[5]  page size
-- Returns {next cursor ("0-0" when done), number of entries claimed}.
local stream = KEYS[1]
local group, consumer, min_idle, start, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local reply = redis.call('XAUTOCLAIM', stream, group, consumer, min_idle, start,
  'COUNT', count, 'JUSTID')
return {reply[1], #reply[2]}

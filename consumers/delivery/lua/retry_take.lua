-- Take due delivery jobs of one (channel, partition) queue, hiding them for a while.
--
-- A taken job is not removed: its due time moves to now + visibility, so a worker
-- that dies mid-send leaves it to be taken again later (at-least-once); the worker
-- that finishes it removes it (or reschedules it) itself. A queue member whose job
-- is missing from the jobs hash is dropped.
--
-- KEYS[1]  queue: sorted set, notification id -> due time (ms)
-- KEYS[2]  jobs: hash, notification id -> packed job
-- ARGV[1]  now (ms)
-- ARGV[2]  most jobs to take
-- ARGV[3]  visibility (ms): how long a taken job stays hidden
-- Returns a flat array {next due (ms, -1 when empty), id, packed job, id, packed job, ...};
-- "next due" is the earliest due time left in the queue after taking.
local queue, jobs = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local visibility = tonumber(ARGV[3])

local due = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'LIMIT', 0, limit)
local out = {-1}
for i = 1, #due do
  local id = due[i]
  local job = redis.call('HGET', jobs, id)
  if job then
    redis.call('ZADD', queue, now + visibility, id)
    out[#out + 1] = id
    out[#out + 1] = job
  else
    redis.call('ZREM', queue, id)
  end
end
local first = redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')
if #first > 0 then
  out[1] = math.floor(tonumber(first[2]))
end
return out

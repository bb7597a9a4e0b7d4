-- Point a partition's view at a rebuilt namespace, only if it has caught up.
--@include positions
-- KEYS[1]  the partition's view pointer (absent = ARGV[3])
-- KEYS[2]  the checkpoint of the namespace in use (ARGV[1])
-- KEYS[3]  the checkpoint of the rebuilt namespace (ARGV[2])
-- ARGV[1]  the namespace in use, as the caller believes
-- ARGV[2]  the rebuilt namespace
-- ARGV[3]  the default namespace
-- Returns {"ok"} (switched, or was already), {"behind", live checkpoint}, or
-- {"moved", actual namespace} when the pointer names neither.
local view_key, old_ckpt_key, new_ckpt_key = KEYS[1], KEYS[2], KEYS[3]
local old_ns, new_ns, default_ns = ARGV[1], ARGV[2], ARGV[3]

local view = redis.call('GET', view_key) or default_ns
if view == new_ns then
  return {'ok'}
end
if view ~= old_ns then
  return {'moved', view}
end
local live = redis.call('GET', old_ckpt_key)
local rebuilt = redis.call('GET', new_ckpt_key)
if live and (not rebuilt or pad(rebuilt) < pad(live)) then
  return {'behind', live}
end
redis.call('SET', view_key, new_ns)
return {'ok'}

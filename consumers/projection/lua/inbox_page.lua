-- One page of a user's inbox, newest first, with the unread count, in one snapshot.
-- KEYS[1]  the partition's view pointer (absent = ARGV[2])
-- KEYS[2]  the sorted set to page through (inbox, or one status set) in ARGV[1]
-- KEYS[3]  the user's unread set in ARGV[1]
-- ARGV[1]  namespace the keys were built for
-- ARGV[2]  the default namespace when the pointer is absent
-- ARGV[3]  upper lex bound ("+" or "(" .. padded cursor: strictly older than it)
-- ARGV[4]  lower lex bound ("-" or "(" .. padded after .. ";": strictly newer than it)
-- ARGV[5]  how many members to return at most (page size + 1, to know if more exist)
-- ARGV[6]  item key prefix in ARGV[1]
-- ARGV[7]  "pinned" to read ARGV[1] whatever the pointer says (a private namespace: an
--          inbox rebuilt as of a time), else ""
-- Returns {"ok", unread count, {members}, {item fields}, ...} or {"ns", actual}.
local view_key, set_key, unread_key = KEYS[1], KEYS[2], KEYS[3]
local ns, default_ns, upper, lower = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local count, item_prefix = tonumber(ARGV[5]), ARGV[6]
local view = redis.call('GET', view_key) or default_ns
if view ~= ns and ARGV[7] ~= 'pinned' then
  return {'ns', view}
end
local members = redis.call('ZREVRANGEBYLEX', set_key, upper, lower, 'LIMIT', 0, count)
local out = {'ok', redis.call('ZCARD', unread_key), members}
for i = 1, #members do
  local member = members[i]
  local nid = string.sub(member, string.find(member, ':', 1, true) + 1)
  out[#out + 1] = redis.call('HMGET', item_prefix .. nid, 'c', 't', 'b', 'd', 'ts', 'p', 'r', 'a',
    's')
end
return out

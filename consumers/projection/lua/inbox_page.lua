-- One page of a user's inbox, newest first, with the unread and unseen counts, in one
-- snapshot. Expired items (expires_at at or before the server's time) are left out of
-- the page and the counts; snoozed items are left out unless ARGV[8] is "snoozed"
-- (then only they are listed).
-- KEYS[1]  the partition's view pointer (absent = ARGV[2])
-- KEYS[2]  the sorted set to page through (inbox, or one status set) in ARGV[1]
-- KEYS[3]  the user's unread set in ARGV[1]
-- KEYS[4]  the user's unseen set in ARGV[1]
-- KEYS[5]  the user's expiring set (member -> expires_at ms) in ARGV[1]
-- ARGV[1]  namespace the keys were built for
-- ARGV[2]  the default namespace when the pointer is absent
-- ARGV[3]  upper lex bound ("+" or "(" .. padded cursor: strictly older than it)
-- ARGV[4]  lower lex bound ("-" or "(" .. padded after .. ";": strictly newer than it)
-- ARGV[5]  how many members to return at most (page size + 1, to know if more exist)
-- ARGV[6]  item key prefix in ARGV[1]
-- ARGV[7]  "pinned" to read ARGV[1] whatever the pointer says (a private namespace: an
--          inbox rebuilt as of a time), else ""
-- ARGV[8]  "snoozed" to list only snoozed items, else ""
-- Returns {"ok", unread count, {members}, unseen count, {item fields + seen flag}, ...}
-- or {"ns", actual}.
local view_key, set_key, unread_key, unseen_key, exp_key = KEYS[1], KEYS[2], KEYS[3],
  KEYS[4], KEYS[5]
local ns, default_ns, upper, lower = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local count, item_prefix, snoozed_only = tonumber(ARGV[5]), ARGV[6], ARGV[8] == 'snoozed'
local call = redis.call
local view = call('GET', view_key) or default_ns
if view ~= ns and ARGV[7] ~= 'pinned' then
  return {'ns', view}
end
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired, gone = call('ZRANGEBYSCORE', exp_key, '-inf', now), {}
local unread, unseen = call('ZCARD', unread_key), call('ZCARD', unseen_key)
for i = 1, #expired do
  local member = expired[i]
  gone[member] = true
  if call('ZSCORE', unread_key, member) then
    unread = unread - 1
  end
  if call('ZSCORE', unseen_key, member) then
    unseen = unseen - 1
  end
end
local members, fields = {}, {}
local bound, chunk = upper, count
while #members < count do
  local batch = call('ZREVRANGEBYLEX', set_key, bound, lower, 'LIMIT', 0, chunk)
  for i = 1, #batch do
    local member = batch[i]
    if not gone[member] then
      local nid = string.sub(member, string.find(member, ':', 1, true) + 1)
      local f = call('HMGET', item_prefix .. nid, 'c', 't', 'b', 'd', 'ts', 'p', 'r', 'a',
        's', 'z', 'x')
      if (f[10] ~= false) == snoozed_only then
        f[12] = call('ZSCORE', unseen_key, member) and '0' or '1'
        members[#members + 1] = member
        fields[#fields + 1] = f
        if #members == count then
          break
        end
      end
    end
  end
  if #batch < chunk then
    break
  end
  bound = '(' .. batch[#batch]
  chunk = math.min(chunk * 2, 1000)
end
local out = {'ok', unread, members, unseen}
for i = 1, #fields do
  out[#out + 1] = fields[i]
end
return out

-- index: records in a user's index (KEYS[1]) the state of some of their memberships
-- as of a content version, keeping whichever state has the newest version, so that
-- writes from several nodes in any order converge (cluster mode; see docs/SCALE-OUT.md).
--
-- ARGV: 4 values per membership: field (content NUL reaction), version, state, n.
-- State 'm': a member, n its expiry. 't': not a member, n the time (unix ms); written
-- only over an existing entry. 'T': not a member, written in any case (the op removed
-- the member, so an older 'm' still on its way must not win).
local key = KEYS[1]
for i = 1, #ARGV - 3, 4 do
  local f, v, st, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local cur = redis.call('HGET', key, f)
  local curv = cur and string.match(cur, '^(%-?%d+) ')
  if not curv or cmp(v, curv) >= 0 then
    if st == 'm' then
      redis.call('HSET', key, f, v .. ' m ' .. n)
    elseif cur or st == 'T' then
      redis.call('HSET', key, f, v .. ' t ' .. n)
    end
  end
end
return 0

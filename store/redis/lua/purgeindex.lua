-- purgeindex: deletes the 't' entries (non-members) of a user index (KEYS[1]) written
-- before ARGV[1] (unix ms). Returns how many.
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all - 1, 2 do
  local at = string.match(all[i + 1], '^%-?%d+ t (%-?%d+)$')
  if at and cmp(at, ARGV[1]) < 0 then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
return n

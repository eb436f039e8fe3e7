-- purge: forgets up to ARGV[2] tombstones of one (content, reaction) whose TS is
-- before ARGV[1]. KEYS: tombstone set, ts hash, members. Returns {forgotten, seen}:
-- seen == ARGV[2] means there may be more.
local us = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
local n = 0
for _, u in ipairs(us) do
  if redis.call('ZSCORE', KEYS[3], u) == false then
    redis.call('HDEL', KEYS[2], u)
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], u)
end
return {n, #us}

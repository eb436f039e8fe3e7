-- members: a page of a (content, reaction)'s members with their expiries, or nil for
-- an unknown content. KEYS: counts hash, members, expiry hash. ARGV: ZRANGEBYLEX min,
-- limit (0: all).
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local us
if tonumber(ARGV[2]) > 0 then
  us = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], '+', 'LIMIT', 0, ARGV[2])
else
  us = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], '+')
end
local out = {}
for i, u in ipairs(us) do
  out[2 * i - 1] = u
  out[2 * i] = redis.call('HGET', KEYS[3], u) or '0'
end
return out

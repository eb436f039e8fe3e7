-- apply: applies ops, in order, as one atomic step (see docs/SCALE-OUT.md, "Scripts").
--
-- ARGV[1] node id, ARGV[2] now (unix ms), ARGV[3] change feed channel ('' to publish
-- nothing), ARGV[4] '1' to keep the user and contents indexes here (every key on one
-- server), '0' when the caller keeps them (cluster). Then 14 values per op:
--   content, reaction, user, action (1 add, 2 remove, 3 expire), ts, expires_at,
--   and the KEYS positions of its counts hash, version, members, expiry hash, ts hash,
--   tombstone set, user index (0: none) and contents index (0: none).
-- Returns 8 values per op: changed (0/1), count, expiry, previous expiry, stale (0/1),
-- content version, member (0/1), content known (0/1); the version and known are
-- always 0 when ARGV[4] is '1'.
local node, now, channel, indexes = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local out, msg = {}, {}

local function field(s)
  return #s .. ':' .. s
end

for b = 5, #ARGV - 13, 14 do
  local c, r, u, act, ts, exp = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]
  local kn, kv = KEYS[tonumber(ARGV[b + 6])], KEYS[tonumber(ARGV[b + 7])]
  local km, kx = KEYS[tonumber(ARGV[b + 8])], KEYS[tonumber(ARGV[b + 9])]
  local kt, kd = KEYS[tonumber(ARGV[b + 10])], KEYS[tonumber(ARGV[b + 11])]
  local iu, ic = tonumber(ARGV[b + 12]), tonumber(ARGV[b + 13])

  local member = redis.call('ZSCORE', km, u) ~= false
  local prev = '0'
  if member then prev = redis.call('HGET', kx, u) or '0' end
  local rem = redis.call('HGET', kt, u) -- the remembered TS, or false

  -- Last writer wins (store.Op.TS): older is stale; at a tie a remove applies and an
  -- add applies only to a member (a duplicate that refreshes the expiry).
  local stale = false
  if act ~= '3' and ts ~= '0' and rem then
    local d = cmp(ts, rem)
    stale = d < 0 or (d == 0 and act == '1' and not member)
  end

  local changed, expiry, count = false, prev, nil
  if not stale then
    if act == '1' then
      if ts ~= '0' then redis.call('HSET', kt, u, ts) end
      if not member then
        redis.call('ZADD', km, 0, u)
        if rem then redis.call('ZREM', kd, u) end -- was a tombstone
        count = redis.call('HINCRBY', kn, r, 1)
        changed, member = true, true
        -- A content is new only when one of its counts goes from 0 to 1.
        if ic > 0 and count == 1 then redis.call('ZADD', KEYS[ic], 0, c) end
      end
      if exp ~= prev then
        if exp == '0' then
          redis.call('HDEL', kx, u)
        else
          redis.call('HSET', kx, u, exp)
        end
      end
      expiry = exp
    else
      if act == '2' and ts ~= '0' then
        redis.call('HSET', kt, u, ts)
        rem = ts
        if not member then redis.call('ZADD', kd, ts, u) end
      end
      -- A remove takes a member out; an expire only one whose expiry has come.
      if member and (act == '2' or (prev ~= '0' and cmp(prev, exp) <= 0)) then
        redis.call('ZREM', km, u)
        if prev ~= '0' then redis.call('HDEL', kx, u) end
        count = redis.call('HINCRBY', kn, r, -1)
        if rem then redis.call('ZADD', kd, rem, u) end -- a tombstone
        changed, member, expiry = true, false, '0'
      end
    end
  end

  -- The content version orders the index writes of cluster mode (index.lua). Here,
  -- with the indexes written in the same step, it is not needed: entries carry 0.
  local v, known = '0', 0
  if indexes then
    if iu > 0 and (changed or expiry ~= prev) then
      local f = c .. '\0' .. r
      if member then
        redis.call('HSET', KEYS[iu], f, '0 m ' .. expiry)
      else
        redis.call('HDEL', KEYS[iu], f)
      end
    end
  else
    if changed or expiry ~= prev then
      v = int(redis.call('INCR', kv))
    else
      v = redis.call('GET', kv) or '0'
    end
    if member or redis.call('EXISTS', kn) == 1 then known = 1 end
  end

  if not count then count = redis.call('ZCARD', km) end
  if changed then
    msg[#msg + 1] = field(c) .. field(r) .. field(u) .. field(act) .. field(int(count)) .. field(expiry)
  end
  out[#out + 1] = changed and 1 or 0
  out[#out + 1] = count
  out[#out + 1] = expiry
  out[#out + 1] = prev
  out[#out + 1] = stale and 1 or 0
  out[#out + 1] = v
  out[#out + 1] = member and 1 or 0
  out[#out + 1] = known
end

if channel ~= '' and #msg > 0 then
  redis.call('PUBLISH', channel, field('1') .. field(node) .. field(now) .. table.concat(msg))
end
return out

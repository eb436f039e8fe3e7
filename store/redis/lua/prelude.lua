-- cmp compares two decimal int64 strings in canonical form (as Go's strconv writes
-- them): -1, 0 or 1. Lua numbers are doubles, so int64 values are compared as text.
local function cmp(a, b)
  if a == b then return 0 end
  local an, bn = string.byte(a, 1) == 45, string.byte(b, 1) == 45 -- '-'
  if an ~= bn then
    if an then return -1 end
    return 1
  end
  local r
  if #a ~= #b then
    if #a < #b then r = -1 else r = 1 end
  else
    for i = 1, #a do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then
        if x < y then r = -1 else r = 1 end
        break
      end
    end
  end
  if an then r = -r end
  return r
end

-- int formats a Lua number (an integer reply) without an exponent.
local function int(n)
  return string.format('%d', n)
end

-- Moves one region's trailing timeframes to a new watermark, as ONE atomic step per region.
-- A trailing key holds the sum of the panes whose start is in [lo, hi]: hi = the last pane
-- the watermark has passed (the one before the watermark's own pane), lo = hi - size + pane,
-- so it covers [watermark's pane start - size, watermark's pane start). The pane being
-- filled is not in it: the flush then writes no trailing key for current events (late
-- events into panes in range still add to it). Moving adds the panes (hi, hi'] and subtracts
-- the panes [lo, lo') (deleting them); when the ranges do not overlap (or on the first
-- move) the key is rebuilt from the new range's panes. Never moves back.
--
-- KEYS[1] hash region:{r}:trailing (spec -> "lo:hi")
-- ARGV[1] watermark (ms)  ARGV[2] the region's key prefix "region:{r}:"
-- then per spec: name, size ms, pane ms
-- Returns the names of the specs whose trailing key changed range.

local wm = tonumber(ARGV[1])
local prefix = ARGV[2]
local changed = {}

local CHUNK = 1000 -- members per bulk call (Lua's unpack stays far below its stack limit)

-- Adds (sign 1) or subtracts (sign -1) a pane's counts to the trailing key, in bulk: per
-- thousand members one ZMSCORE, one ZADD of the new totals and one ZREM of those that reach
-- 0. Into an empty key a pane is copied whole (COPY, no Lua loop).
local function fold(target, pane, sign)
  if sign > 0 and redis.call('EXISTS', target) == 0 then
    if redis.call('COPY', pane, target) == 1 then redis.call('PERSIST', target) end
    return
  end
  local flat = redis.call('ZRANGE', pane, 0, -1, 'WITHSCORES')
  for base = 1, #flat, 2 * CHUNK do
    local last = math.min(#flat, base + 2 * CHUNK - 1)
    local posts = {}
    for j = base, last, 2 do posts[#posts + 1] = flat[j] end
    local old = redis.call('ZMSCORE', target, unpack(posts))
    local keep, gone = {}, {}
    local i = 0
    for j = base, last, 2 do
      i = i + 1
      local v = (tonumber(old[i]) or 0) + sign * tonumber(flat[j + 1])
      if v > 0 then
        keep[#keep + 1] = v
        keep[#keep + 1] = flat[j]
      else
        gone[#gone + 1] = flat[j]
      end
    end
    if #keep > 0 then redis.call('ZADD', target, unpack(keep)) end
    if #gone > 0 then redis.call('ZREM', target, unpack(gone)) end
  end
end

for i = 3, #ARGV, 3 do
  local name = ARGV[i]
  local size = tonumber(ARGV[i + 1])
  local P = tonumber(ARGV[i + 2])
  local key = prefix .. 'trailing:' .. name
  local paneOf = function(p) return prefix .. 'pane:' .. name .. ':' .. string.format('%d', p) end
  local hi2 = math.floor(wm / P) * P - P
  local lo2 = hi2 - size + P
  local cur = redis.call('HGET', KEYS[1], name)
  local lo, hi
  if cur then
    local sep = string.find(cur, ':', 1, true)
    lo = tonumber(string.sub(cur, 1, sep - 1))
    hi = tonumber(string.sub(cur, sep + 1))
  end
  if cur == false or cur == nil or lo2 > hi then
    redis.call('DEL', key)
    for p = lo2, hi2, P do fold(key, paneOf(p), 1) end
    if lo then
      for p = lo, math.min(hi, lo2 - P), P do redis.call('DEL', paneOf(p)) end
    end
  elseif hi2 > hi then
    for p = hi + P, hi2, P do fold(key, paneOf(p), 1) end
    for p = lo, lo2 - P, P do
      fold(key, paneOf(p), -1)
      redis.call('DEL', paneOf(p))
    end
  else
    hi2 = nil
  end
  if hi2 then
    redis.call('HSET', KEYS[1], name, string.format('%d:%d', lo2, hi2))
    changed[#changed + 1] = name
  end
end
return changed

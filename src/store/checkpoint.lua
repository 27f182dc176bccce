-- Begins a checkpoint of one region: a consistent cut of everything changed since the
-- last committed checkpoint, in O(1). Every flush records the absolute count of each entry
-- it changed in the dirty hash, atomically with the offsets it applied, so the entries and
-- the offsets taken here agree exactly; the caller then reads the entries at its own pace
-- (HSCAN), without holding Redis.
--
-- KEYS[1] dirty hash   KEYS[2] inflight hash (entries of a checkpoint not yet committed)
-- KEYS[3] offsets hash   ARGV[1] a token naming this cut, stored in the inflight hash under
-- the field "\0cut": the caller's read is whole only if it saw its token and every entry
-- (Redis may lose the hash mid-read: FLUSHDB, a restart).
-- Returns {time ms, {partition, offset, ...}, fields in the inflight hash}; an entry is
-- "<key id>|<post>" -> count, key id "all" or a window id; a count of -1 means the post is
-- no longer kept there (evicted in bounded mode), which the record skips.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    -- A checkpoint that did not commit: merge (newer counts win), then take both.
    local flat = redis.call('HGETALL', KEYS[1])
    for i = 1, #flat, 2 do redis.call('HSET', KEYS[2], flat[i], flat[i + 1]) end
    redis.call('DEL', KEYS[1])
  else
    redis.call('RENAME', KEYS[1], KEYS[2])
  end
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'0', redis.call('HGETALL', KEYS[3]), 0}
end
redis.call('HSET', KEYS[2], '\0cut', ARGV[1])
local t = redis.call('TIME')
local ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return {ms, redis.call('HGETALL', KEYS[3]), redis.call('HLEN', KEYS[2])}

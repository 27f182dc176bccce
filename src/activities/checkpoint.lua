-- Begins a checkpoint of one region: a consistent cut of everything changed since the
-- last committed checkpoint. The flush script is atomic per region, so the counts and
-- the offsets read here agree exactly.
--
-- KEYS[1] dirty set   KEYS[2] inflight set (entries of a checkpoint not yet committed)
-- KEYS[3] offsets hash   ARGV[1] the region's key prefix ("region:{r}:top_k")
-- Returns {time ms, {partition, offset, ...}, {entry, count, ...}}; an entry is
-- "<key id>|<post>" with key id "all" or a window id; a count of -1 means the key is gone
-- (an expired window), which the record drops.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[1])
    redis.call('DEL', KEYS[1])
  else
    redis.call('RENAME', KEYS[1], KEYS[2])
  end
end
local t = redis.call('TIME')
local ms = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local members = redis.call('SMEMBERS', KEYS[2])
local out = {}
for _, m in ipairs(members) do
  local sep = string.find(m, '|', 1, true)
  local keyId = string.sub(m, 1, sep - 1)
  local post = string.sub(m, sep + 1)
  local key = ARGV[1]
  if keyId ~= 'all' then key = key .. ':' .. keyId end
  -- Window keys share the region's hash tag (same slot) though not declared in KEYS.
  local score = redis.call('ZSCORE', key, post)
  out[#out + 1] = m
  out[#out + 1] = score or '-1'
end
return {ms, redis.call('HGETALL', KEYS[3]), out}

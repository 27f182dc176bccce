-- Records that every region has applied a partition's records up to an offset: the point
-- that partition's consumption resumes after (never a later committed Kafka offset).
--
-- KEYS[1] string hh:epoch                  the Redis state's epoch
-- KEYS[2] hash   hh:applied:<topic>         partition -> last offset applied in every region
-- KEYS[3] hash   hh:recovery:<topic>        while a rebuild's replay runs: "p:<partition>" ->
--                                           the offset it must reach, "meta" -> JSON
-- ARGV[1] the epoch the batch's flushes ran under   ARGV[2] partition   ARGV[3] offset
--
-- Returns 0 (nothing written) when Redis is no longer at that epoch: it was lost or rebuilt
-- after the flushes, so they are gone and the caller must rewind; else 1.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local offset = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[2], ARGV[2])
if not cur or tonumber(cur) < offset then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
local field = 'p:' .. ARGV[2]
local target = redis.call('HGET', KEYS[3], field)
if target and tonumber(target) <= offset then
  redis.call('HDEL', KEYS[3], field)
  -- Only "meta" left: every partition has replayed what the record did not hold.
  if redis.call('HLEN', KEYS[3]) <= 1 then redis.call('DEL', KEYS[3]) end
end
return 1

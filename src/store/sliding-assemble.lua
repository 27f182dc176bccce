-- Sums a sliding window's panes into a private key in bounded steps, then puts the sum in
-- place of the window's key in one step (store/window-snapshots.ts assembleSliding). One
-- ZUNIONSTORE of five 125,000-post panes held Redis over a second; a step here reads one
-- ZSCAN page of one pane. ZSCAN returns every member present for the whole scan at least
-- once, and may return one twice while Redis resizes the set: a set of the pane's members
-- already added keeps each added once. An attempt's keys carry its own token, so a retried
-- attempt never adds into another's sum; they expire unless renewed by a step.
--
-- The panes are summed into a hash (HINCRBY), then the hash is copied into a sorted set
-- page by page (one ZADD per page, each member inserted once). A ZINCRBY per member into the
-- growing sorted set moved it in the skiplist at every pane: on 5 panes of 250,000 members
-- (an idle Redis, a scratch run), a 1,000-member call took 11.5-13.2 ms at the median with
-- ZINCRBY, 4.0-4.9 with HINCRBY and the copy (its calls included).
--
-- KEYS[1] the attempt's marker (a string key: while it exists, the attempt's keys are whole)
-- step:    KEYS[2] the sum's hash, KEYS[3] the pane's members already added, KEYS[4] the pane
--          ARGV[1] 'step', ARGV[2] ZSCAN cursor, ARGV[3] page size, ARGV[4] ms the attempt's keys live
--          -> the next cursor ('0': the pane is done, its set of added members dropped)
-- convert: KEYS[2] the sum's hash, KEYS[3] the sum's sorted set, KEYS[4] not used
--          ARGV[1] 'convert', ARGV[2] HSCAN cursor, ARGV[3] page size, ARGV[4] ms the attempt's keys live
--          -> the next cursor ('0': every member copied, the hash dropped); a member HSCAN
--          returns twice is set to the same score twice
-- finish:  KEYS[2] the sum's sorted set, KEYS[3] the window's key, KEYS[4] global:dirty
--          ARGV[1] 'finish', ARGV[2] the window's expiry (unix ms), ARGV[3] the window id
--          -> the window's member count
-- Each errors with LOST when the marker is gone (a wipe of the region's keys): the caller
-- starts over.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('LOST the sliding assembly\'s keys are gone')
end
local op = ARGV[1]

-- After a page: the attempt's keys live on (PEXPIRE of a key not created yet does nothing);
-- the key being read is dropped once its scan is done.
local function paged(cursor, ttl, kept, read)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', kept, ttl)
  if cursor == '0' then redis.call('UNLINK', read) else redis.call('PEXPIRE', read, ttl) end
  return cursor
end

if op == 'step' then
  local ttl = ARGV[4]
  local page = redis.call('ZSCAN', KEYS[4], ARGV[2], 'COUNT', ARGV[3])
  local flat = page[2]
  for i = 1, #flat, 2 do
    if redis.call('SADD', KEYS[3], flat[i]) == 1 then redis.call('HINCRBY', KEYS[2], flat[i], flat[i + 1]) end
  end
  return paged(page[1], ttl, KEYS[2], KEYS[3])
end

if op == 'convert' then
  local ttl = ARGV[4]
  local page = redis.call('HSCAN', KEYS[2], ARGV[2], 'COUNT', ARGV[3])
  local flat = page[2]
  if #flat > 0 then
    local args = {}
    for i = 1, #flat, 2 do
      args[i] = flat[i + 1]
      args[i + 1] = flat[i]
    end
    redis.call('ZADD', KEYS[3], unpack(args))
  end
  return paged(page[1], ttl, KEYS[3], KEYS[2])
end

if op == 'finish' then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('RENAME', KEYS[2], KEYS[3])
    redis.call('PEXPIREAT', KEYS[3], ARGV[2])
  else
    redis.call('UNLINK', KEYS[3])
  end
  redis.call('UNLINK', KEYS[1])
  redis.call('SADD', KEYS[4], ARGV[3])
  return redis.call('ZCARD', KEYS[3])
end

return redis.error_reply('unknown op ' .. tostring(op))

-- One page of a roll-up: adds the next members of the oldest FINAL child window not yet
-- rolled (a window of the finest tumbling spec) into each parent window that holds it (the
-- coarser specs rolled from it; config.ts rollChain), in one atomic step with the roll's
-- progress and the checkpoint entries of what it changed (store/window-roll.ts).
--
-- A child at or before its spec's final mark takes no more writes (region-flush.lua), so its
-- ranks do not move while it is rolled: a page is ranks [cursor, cursor + page). Progress is
-- KEYS[1]'s field rolled:<child spec> = "<start>:<cursor>": every child before start is
-- rolled, the child at start up to rank cursor. Readers sum a parent's key and the ranks not
-- yet rolled of its children (store/window-sources.ts); roll_version counts the pages, so a
-- reader that saw it change reads again. The record takes the progress with the counts
-- (key id `roll`, entries <child spec>:start and <child spec>:cursor): a rebuild neither
-- rolls a page twice nor loses one.
--
-- KEYS[1] hash region:{r}:sealed    final:<spec> marks, rolled:<child spec>, roll_version
-- KEYS[2] zset region:{r}:unrolled:<child spec>  starts of the children written and not rolled
-- KEYS[3] set  region:{r}:dirty     key ids changed since the last checkpoint
-- KEYS[4] hash region:{r}:meta      epoch, dirty_entries
-- ARGV[1] JSON {epoch, prefix, child: [name, size ms, ttl ms with the grace],
--              parents: [[name, size ms, ttl ms with the grace], ...], page, upto}
-- -> {'EPOCH'} the region's state is another epoch's (rebuilt): nothing done;
--    {'DONE'} no child at or before min(upto, the child spec's final mark) is left to roll;
--    {'OK', child start, cursor after, child size, events refused, members read, parent ids written...}

local H = cjson.decode(ARGV[1])
if redis.call('HGET', KEYS[4], 'epoch') ~= H.epoch then return {'EPOCH'} end
local prefix = H.prefix
local C = H.child
local fmt = function(n) return string.format('%d', n) end

local first = redis.call('ZRANGE', KEYS[2], 0, 0)
if #first == 0 then return {'DONE'} end
local start = tonumber(first[1])
local mark = tonumber(redis.call('HGET', KEYS[1], 'final:' .. C[1]))
if not mark or start > mark or start > H.upto then return {'DONE'} end

local cursor = 0
local at = redis.call('HGET', KEYS[1], 'rolled:' .. C[1])
if at then
  local sep = string.find(at, ':', 1, true)
  if tonumber(string.sub(at, 1, sep - 1)) == start then cursor = tonumber(string.sub(at, sep + 1)) end
end
local child = prefix .. 'top_k:' .. C[1] .. ':' .. first[1]
local page = redis.call('ZRANGE', child, cursor, cursor + H.page - 1, 'WITHSCORES')
local posts, adds = {}, {}
local events = 0
for i = 1, #page, 2 do
  posts[#posts + 1] = page[i]
  adds[#adds + 1] = tonumber(page[i + 1])
  events = events + adds[#adds]
end

local pending = 0
local refused = 0
local ids = {}
if #posts > 0 then
  for _, p in ipairs(H.parents) do
    local ps = math.floor(start / p[2]) * p[2]
    local pid = p[1] .. ':' .. fmt(ps)
    local pmark = tonumber(redis.call('HGET', KEYS[1], 'final:' .. p[1]))
    if pmark and ps <= pmark then
      -- A parent persists its FINAL snapshot only once its children are rolled
      -- (window-snapshots.ts): only a mark raised by hand gets here.
      refused = refused + events
    else
      local key = prefix .. 'top_k:' .. pid
      local old = redis.call('ZMSCORE', key, unpack(posts))
      local z, h = {}, {}
      for i = 1, #posts do
        local total = fmt((tonumber(old[i]) or 0) + adds[i])
        z[2 * i - 1], z[2 * i] = total, posts[i]
        h[2 * i - 1], h[2 * i] = posts[i], total
      end
      redis.call('ZADD', key, unpack(z))
      redis.call('PEXPIREAT', key, fmt(ps + p[2] + p[3]))
      pending = pending + redis.call('HSET', prefix .. 'dirty:' .. pid, unpack(h))
      redis.call('SADD', KEYS[3], pid)
      ids[#ids + 1] = pid
    end
  end
end

cursor = cursor + #posts
local n = redis.call('ZCARD', child)
local nextStart, nextCursor = start, cursor
if cursor >= n then
  -- Rolled whole: the child's key lives as its own spec's do (a flush kept it for the roll).
  redis.call('ZREM', KEYS[2], first[1])
  redis.call('PEXPIREAT', child, fmt(start + C[2] + C[3]))
  nextStart, nextCursor = start + C[2], 0
end
redis.call('HSET', KEYS[1], 'rolled:' .. C[1], fmt(nextStart) .. ':' .. fmt(nextCursor))
redis.call('HINCRBY', KEYS[1], 'roll_version', 1)
pending = pending + redis.call('HSET', prefix .. 'dirty:roll', C[1] .. ':start', fmt(nextStart), C[1] .. ':cursor', fmt(nextCursor))
redis.call('SADD', KEYS[3], 'roll')
redis.call('HINCRBY', KEYS[4], 'dirty_entries', pending)
local reply = {'OK', first[1], cursor, n, refused, #posts}
for _, id in ipairs(ids) do reply[#reply + 1] = id end
return reply

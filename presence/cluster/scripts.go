package cluster

import "github.com/redis/go-redis/v9"

// The scripts touch only the keys of one node, which share a hash slot
// ({n:<id>} tag), so each runs atomically on Redis Cluster too. Every
// write of a node's sessions is fenced by its lease: it applies only while
// the lease holds the writer's incarnation.

// reserveScript draws a new incarnation: above every earlier one, and not
// below the wall clock in milliseconds, so it still grows after Redis lost
// its data. KEYS: inc. ARGV: now in ms.
var reserveScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local n = math.max(c + 1, tonumber(ARGV[1]))
local s = string.format('%d', n)
redis.call('SET', KEYS[1], s)
return s`)

// registerScript takes the lease for a new incarnation unless another
// holder (not our previous incarnation) has it; the staged session set
// replaces the old one atomically, so an earlier incarnation's sessions are
// gone the moment the new one is visible. KEYS: lease, sessions, stage,
// stream, counter. ARGV: new incarnation, previous one ("" if none), TTL in
// ms, stream cap, channel, node ID, stream age in ms. Returns {1, marker ID}
// or {0, holder}.
var registerScript = redis.NewScript(trimByAge + `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[2] then
  return {0, cur}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
redis.call('SET', KEYS[5], '0')
local id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'i', ARGV[1], 'n', '0')
trimByAge(KEYS[4], ARGV[7])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return {1, id}`)

// renewScript extends the lease if it still holds the incarnation.
// KEYS: lease. ARGV: incarnation, TTL in ms. Returns 1 or 0.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`)

// writeScript applies a batch of changes and logs it as one stream entry,
// if the lease holds the incarnation (else it returns nil: fenced).
// KEYS: lease, sessions, stream, counter. ARGV: incarnation, stream cap,
// channel, node ID, stream age in ms, then pairs: "u"+field → metadata,
// "d"+field → reason.
var writeScript = redis.NewScript(trimByAge + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
for i = 6, #ARGV, 2 do
  local f = ARGV[i]
  if string.sub(f, 1, 1) == 'u' then
    redis.call('HSET', KEYS[2], string.sub(f, 2), ARGV[i + 1])
  else
    redis.call('HDEL', KEYS[2], string.sub(f, 2))
  end
end
local n = redis.call('INCR', KEYS[4])
local args = {'i', ARGV[1], 'n', tostring(n)}
for i = 6, #ARGV do
  args[#args + 1] = ARGV[i]
end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(args))
trimByAge(KEYS[3], ARGV[5])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return id`)

// peekScript is what a node polls of another each renewal period: its
// lease and its stream's last entry ID ("" for none). KEYS: lease, stream.
var peekScript = `
local l = redis.call('GET', KEYS[1]) or ''
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local id = ''
if last[1] then id = last[1][1] end
return {l, id}`

// snapScript reads a node's lease, batch counter, last stream ID and whole
// session set at one instant, to resync from. KEYS: lease, sessions,
// stream, counter.
var snapScript = redis.NewScript(`
local l = redis.call('GET', KEYS[1]) or ''
local n = redis.call('GET', KEYS[4]) or '0'
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local id = ''
if last[1] then id = last[1][1] end
local out = {l, n, id}
local h = redis.call('HGETALL', KEYS[2])
for i = 1, #h do out[#out + 1] = h[i] end
return out`)

// leaveScript ends a node's lease, set and stream on a clean close, if
// the lease is still its own. The incarnation expires rather than goes at
// once, so that a node restarted within that time still draws a larger one
// than the incarnation the others may remember. KEYS: lease, sessions,
// counter, stream, incarnation. ARGV: incarnation, channel, node ID, how
// long the incarnation stays, in ms.
var leaveScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('PEXPIRE', KEYS[5], ARGV[4])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`)

// trimByAge defines trimByAge(stream, age in ms), which drops the entries
// older than age by Redis's own clock (the clock of the entries' IDs). A
// node that fell further behind than that resyncs from the whole set, as
// it does past the length cap.
const trimByAge = `
local function trimByAge(stream, age)
  local t = redis.call('TIME')
  local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(age)
  if minid > 0 then
    redis.call('XTRIM', stream, 'MINID', '~', string.format('%d', minid))
  end
end
`

// reapScript removes a dead node's set, stream, counters and incarnation,
// unless it has a lease again. KEYS: lease, sessions, stream, counter,
// incarnation. Losing the incarnation is what losing Redis's data does:
// the next one is drawn from the wall clock, long past the old one.
var reapScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1`)

// Lua scripts of the automation engine. An instance is a hash `i:<key>` (key =
// automation|profile|event id) plus its entry in the namespace's timer ZSET (waiting) or lease
// ZSET (being fired), and its membership in the profile's set (for cancel and erase). Every state
// change is one script, so cancel, fire and erase cannot interleave badly; the counters of an
// automation (`astats:<name>`) move in the same scripts.

const helpers = `
local function finalize(prefix, key, profileId, automation, counter)
  redis.call('DEL', prefix .. 'i:' .. key)
  redis.call('ZREM', prefix .. 'timers', key)
  redis.call('ZREM', prefix .. 'lease', key)
  redis.call('SREM', prefix .. 'pi:' .. profileId, key)
  local stats = prefix .. 'astats:' .. automation
  redis.call('HINCRBY', stats, 'waiting', -1)
  if counter ~= '' then redis.call('HINCRBY', stats, counter, 1) end
end
`;

/**
 * schedule: ARGV = prefix, key, profileId, automation, dueMs, instance JSON. Creates the instance
 * unless it exists (a replayed trigger event). Returns 1 if created, 0 if it existed.
 */
export const SCHEDULE = `
local prefix, key, profileId, automation, due, json = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local instance = prefix .. 'i:' .. key
if redis.call('EXISTS', instance) == 1 then return 0 end
redis.call('HSET', instance, 'json', json)
redis.call('ZADD', prefix .. 'timers', due, key)
redis.call('SADD', prefix .. 'pi:' .. profileId, key)
local stats = prefix .. 'astats:' .. automation
redis.call('HINCRBY', stats, 'triggered', 1)
redis.call('HINCRBY', stats, 'waiting', 1)
return 1
`;

/**
 * claim: ARGV = prefix, nowMs, limit, leaseMs. Returns expired leases to the timers (their worker
 * died), then moves up to `limit` due instances into the lease ZSET and returns {key, json} pairs.
 */
export const CLAIM = `
local prefix, now, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local timers, leases = prefix .. 'timers', prefix .. 'lease'
for _, key in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', leases, key)
  redis.call('ZADD', timers, now, key)
end
local result = {}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', timers, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', timers, key)
  local json = redis.call('HGET', prefix .. 'i:' .. key, 'json')
  if json then
    redis.call('ZADD', leases, now + lease, key)
    table.insert(result, key)
    table.insert(result, json)
  end
end
return result
`;

/** renew: ARGV = prefix, untilMs, then keys. Extends the leases of instances still being fired. */
export const RENEW = `
local prefix, untilMs = ARGV[1], tonumber(ARGV[2])
local leases = prefix .. 'lease'
for i = 3, #ARGV do
  if redis.call('ZSCORE', leases, ARGV[i]) then redis.call('ZADD', leases, untilMs, ARGV[i]) end
end
return #ARGV - 2
`;

/** hold: ARGV = prefix, key, dueMs. Puts a claimed instance back to wait (its automation is suspended). */
export const HOLD = `
local prefix, key, due = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', prefix .. 'i:' .. key) == 0 then return 0 end
redis.call('ZREM', prefix .. 'lease', key)
redis.call('ZADD', prefix .. 'timers', due, key)
return 1
`;

/**
 * guard: ARGV = prefix, key, profileId, automation, nowMs, graceMs (0 = none), capMax (0 = none),
 * capWindowMs, skipReason ("" = none: opt-out or suppression decided by the caller).
 * Returns "cancelled" (the instance is gone), "send" (reserved: grace and capping recorded; a
 * retry after a crash finds it reserved and sends again under the same idempotency key), or
 * "skip:<reason>" (finalised).
 */
export const GUARD = `${helpers}
local prefix, key, profileId, automation = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, grace, capMax, capWindow, skip = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local instance = prefix .. 'i:' .. key
if redis.call('EXISTS', instance) == 0 then return 'cancelled' end
if redis.call('HGET', instance, 'reserved') == '1' then return 'send' end
local function skipWith(reason)
  finalize(prefix, key, profileId, automation, 'skipped:' .. reason)
  return 'skip:' .. reason
end
if skip ~= '' then return skipWith(skip) end
local graceKey = prefix .. 'grace:' .. automation .. ':' .. profileId
-- The record holds the end of the period, compared with the caller's clock (tests move it); its
-- TTL only cleans up.
if grace > 0 and tonumber(redis.call('GET', graceKey) or '0') > now then return skipWith('grace') end
local capKey = prefix .. 'cap:' .. automation .. ':' .. profileId
if capMax > 0 then
  redis.call('ZREMRANGEBYSCORE', capKey, '-inf', now - capWindow)
  if redis.call('ZCARD', capKey) >= capMax then return skipWith('capping') end
end
if grace > 0 then redis.call('SET', graceKey, tostring(now + grace), 'PX', grace + 60000) end
if capMax > 0 then
  redis.call('ZADD', capKey, now, key)
  redis.call('PEXPIRE', capKey, capWindow)
end
redis.call('HSET', instance, 'reserved', '1')
return 'send'
`;

/** done: ARGV = prefix, key, profileId, automation. The send job is published: the instance ends. */
export const DONE = `${helpers}
local prefix, key, profileId, automation = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', prefix .. 'i:' .. key) == 0 then return 0 end
finalize(prefix, key, profileId, automation, 'sent')
return 1
`;

/**
 * cancel: ARGV = prefix, profileId, reason, then keys. Ends each instance still waiting or being
 * fired but not yet reserved for sending. Returns how many were cancelled.
 */
export const CANCEL = `${helpers}
local prefix, profileId, reason = ARGV[1], ARGV[2], ARGV[3]
local count = 0
for i = 4, #ARGV do
  local key = ARGV[i]
  local instance = prefix .. 'i:' .. key
  if redis.call('EXISTS', instance) == 1 and redis.call('HGET', instance, 'reserved') ~= '1' then
    local automation = string.match(key, '^([^|]+)|')
    finalize(prefix, key, profileId, automation, reason)
    count = count + 1
  end
end
return count
`;

/** instances: ARGV = prefix, profileId. The profile's instances as {key, json} pairs. */
export const INSTANCES = `
local prefix, profileId = ARGV[1], ARGV[2]
local result = {}
for _, key in ipairs(redis.call('SMEMBERS', prefix .. 'pi:' .. profileId)) do
  local json = redis.call('HGET', prefix .. 'i:' .. key, 'json')
  if json then
    table.insert(result, key)
    table.insert(result, json)
  else
    redis.call('SREM', prefix .. 'pi:' .. profileId, key)
  end
end
return result
`;

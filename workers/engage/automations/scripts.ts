// Lua scripts of the automation engine. An instance is a hash `i:<key>` (key =
// automation|profile|event id) plus its entry in the namespace's timer ZSET (waiting) or lease
// ZSET (being fired), and its membership in the profile's set (for cancel and erase). Every state
// change is one script, so cancel, fire and erase cannot interleave badly; the counters of an
// automation (`astats:<name>`, RedisKeys.automationCounters) move in the same scripts.
// Key suffixes used here mirror runtime/wire/keys.ts: p:<profile> (RedisKeys.profile),
// suppressed (RedisKeys.suppressed), timers, lease, astats:<automation>; and ended:<key>.

/**
 * How long an ended instance is remembered (`ended:<key>`): longer than an unacked event takes to
 * come back (the events consumer's ack_wait, 30 s) across a restart of engage, NATS or Redis.
 */
export const ENDED_MARKER_TTL_S = 15 * 60;

const helpers = `
-- An ended instance leaves a marker for ENDED_TTL seconds, so its trigger event seen again (a
-- redelivery after a crash or a NATS restart lost its ack) neither starts nor counts it again.
local ENDED_TTL = ${ENDED_MARKER_TTL_S}
local function markEnded(prefix, key)
  redis.call('SET', prefix .. 'ended:' .. key, '1', 'EX', ENDED_TTL)
end

local function finalize(prefix, key, profileId, automation, counter)
  redis.call('DEL', prefix .. 'i:' .. key)
  markEnded(prefix, key)
  redis.call('ZREM', prefix .. 'timers', key)
  redis.call('ZREM', prefix .. 'lease', key)
  redis.call('SREM', prefix .. 'pi:' .. profileId, key)
  local stats = prefix .. 'astats:' .. automation
  redis.call('HINCRBY', stats, 'waiting', -1)
  if counter ~= '' then redis.call('HINCRBY', stats, counter, 1) end
end

-- The skip decided from the profile, or nil. Suppression wins even for transactional messages.
-- For push, 'endpoints' receives the profile's push subscriptions (field, JSON) after 'send'.
local function skipReason(prefix, profile, rule, endpoints)
  if rule.push then
    local flat = redis.call('HGETALL', profile)
    if #flat == 0 then return 'no_profile' end
    for i = 1, #flat, 2 do
      if string.sub(flat[i], 1, 2) == 'w:' then
        table.insert(endpoints, string.sub(flat[i], 3))
        table.insert(endpoints, flat[i + 1])
      end
    end
    if #endpoints == 1 then return 'no_subscription' end
    return nil
  end
  local fields = redis.call('HMGET', profile, 'email', 'emailSubscription')
  if not fields[1] then return redis.call('EXISTS', profile) == 0 and 'no_profile' or 'no_address' end
  if redis.call('HEXISTS', prefix .. 'suppressed', fields[1]) == 1 then return 'suppressed' end
  if rule.optedIn and fields[2] == 'unsubscribed' then return 'opt_out' end
  return nil
end

-- Decides one due instance: {'cancelled'} (gone), {'held'} (its automation is suspended: back to
-- wait until holdUntil), {'skip', reason} (ended and counted), or {'send', field, json, ...}
-- (reserved: grace and capping recorded; push subscriptions follow for push messages). A reserved
-- instance answers 'send' again, so a retry after a crash sends under the same idempotency key.
-- rule: {graceMs, capMax, capWindowMs, push, optedIn, suspended}; nil when the automation is gone.
-- The instance exists; 'reserved' is its reserved mark.
local function decide(prefix, now, holdUntil, rule, key, profileId, automation, reserved)
  if not rule then
    finalize(prefix, key, profileId, automation, 'skipped:automation_deleted')
    return {'skip', 'automation_deleted'}
  end
  if rule.suspended then
    redis.call('ZREM', prefix .. 'lease', key)
    redis.call('ZADD', prefix .. 'timers', holdUntil, key)
    return {'held'}
  end
  local result = {'send'}
  local skip = skipReason(prefix, prefix .. 'p:' .. profileId, rule, result)
  if reserved == '1' then return result end
  if skip then
    finalize(prefix, key, profileId, automation, 'skipped:' .. skip)
    return {'skip', skip}
  end
  local grace, capMax, capWindow = rule.graceMs, rule.capMax, rule.capWindowMs
  local graceKey, capKey
  -- The record holds the end of the period, compared with the caller's clock (tests move it); its
  -- TTL only cleans up.
  if grace > 0 then
    graceKey = prefix .. 'grace:' .. automation .. ':' .. profileId
    if tonumber(redis.call('GET', graceKey) or '0') > now then
      finalize(prefix, key, profileId, automation, 'skipped:grace')
      return {'skip', 'grace'}
    end
  end
  if capMax > 0 then
    capKey = prefix .. 'cap:' .. automation .. ':' .. profileId
    redis.call('ZREMRANGEBYSCORE', capKey, '-inf', now - capWindow)
    if redis.call('ZCARD', capKey) >= capMax then
      finalize(prefix, key, profileId, automation, 'skipped:capping')
      return {'skip', 'capping'}
    end
  end
  if graceKey then redis.call('SET', graceKey, tostring(now + grace), 'PX', grace + 60000) end
  if capKey then
    redis.call('ZADD', capKey, now, key)
    redis.call('PEXPIRE', capKey, capWindow)
  end
  redis.call('HSET', prefix .. 'i:' .. key, 'reserved', '1')
  return result
end

local function fireOne(prefix, now, holdUntil, rule, key, profileId, automation)
  local reserved = redis.call('HMGET', prefix .. 'i:' .. key, 'json', 'reserved')
  if not reserved[1] then
    redis.call('ZREM', prefix .. 'lease', key)
    return {'cancelled'}
  end
  return decide(prefix, now, holdUntil, rule, key, profileId, automation, reserved[2])
end

-- Moves the leases that expired (their worker died) back to the timers, at the time of their last
-- claim or renewal: ahead of later due times.
local function requeueExpired(prefix, now, limit, lease)
  local timers, leases = prefix .. 'timers', prefix .. 'lease'
  local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  for i = 1, #expired, 2 do
    redis.call('ZREM', leases, expired[i])
    redis.call('ZADD', timers, tonumber(expired[i + 1]) - lease, expired[i])
  end
end
`;

/**
 * schedule: ARGV = prefix, key, profileId, automation, dueMs, instance JSON (without its trigger),
 * trigger JSON, and for an instance to fire at once: nowMs, leaseMs, rule JSON. Creates the
 * instance unless it exists (a replayed trigger event): waiting in the timers, or, to fire now,
 * leased (a crash before its send leaves it to the poller once the lease ends) and decided as fire
 * does. Returns {0} if it existed, {1} if created, {1, decision} if created and fired. The trigger
 * is kept apart so a fire splices it into the send job as it is, without parsing it.
 */
export const SCHEDULE = `${helpers}
local prefix, key, profileId, automation, due, json, trigger = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local instance = prefix .. 'i:' .. key
if redis.call('EXISTS', instance) == 1 or redis.call('EXISTS', prefix .. 'ended:' .. key) == 1 then return {0} end
redis.call('HSET', instance, 'json', json, 'trigger', trigger, 'automation', automation, 'profile', profileId)
redis.call('SADD', prefix .. 'pi:' .. profileId, key)
local stats = prefix .. 'astats:' .. automation
redis.call('HINCRBY', stats, 'triggered', 1)
redis.call('HINCRBY', stats, 'waiting', 1)
if ARGV[8] == nil then
  redis.call('ZADD', prefix .. 'timers', due, key)
  return {1}
end
local now, lease = tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('ZADD', prefix .. 'lease', now + lease, key)
return {1, decide(prefix, now, now, cjson.decode(ARGV[10]), key, profileId, automation, nil)}
`;

/**
 * claim: ARGV = prefix, nowMs, limit, leaseMs. Returns expired leases to the timers, then moves up
 * to `limit` due instances into the lease ZSET and returns {json, trigger} pairs (fire decides them;
 * trigger is '' for an instance whose json holds it).
 */
export const CLAIM = `${helpers}
local prefix, now, limit, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local timers, leases = prefix .. 'timers', prefix .. 'lease'
requeueExpired(prefix, now, limit, lease)
local result = {}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', timers, '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZREM', timers, key)
  local fields = redis.call('HMGET', prefix .. 'i:' .. key, 'json', 'trigger')
  if fields[1] then
    redis.call('ZADD', leases, now + lease, key)
    table.insert(result, fields[1])
    table.insert(result, fields[2] or '')
  end
end
return result
`;

/**
 * claimFire: ARGV = prefix, nowMs, limit, leaseMs, holdUntilMs, rules JSON ({automation: rule} of
 * every automation of the namespace). Claims up to `limit` due instances as claim does and decides
 * each as fire does, in the same script: one {key, automation, profileId, trigger JSON,
 * decision...} per claimed instance.
 */
export const CLAIM_FIRE = `${helpers}
local prefix, now, limit, lease, holdUntil = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local rules = cjson.decode(ARGV[6])
local timers, leases = prefix .. 'timers', prefix .. 'lease'
requeueExpired(prefix, now, limit, lease)
local keys = redis.call('ZRANGEBYSCORE', timers, '-inf', now, 'LIMIT', 0, limit)
if #keys == 0 then return {} end
-- One ZREM and one ZADD for the batch (limit <= 2000 keeps unpack within Lua's stack).
redis.call('ZREM', timers, unpack(keys))
local claimed, leased = {}, {}
for _, key in ipairs(keys) do
  -- json, reserved, automation, profile, trigger
  local fields = redis.call('HMGET', prefix .. 'i:' .. key, 'json', 'reserved', 'automation', 'profile', 'trigger')
  if fields[1] then
    if not fields[3] then
      -- Written before instances kept these fields apart.
      local instance = cjson.decode(fields[1])
      fields[3], fields[4], fields[5] = instance.automation, instance.profileId, cjson.encode(instance.trigger)
    end
    table.insert(claimed, {key, fields})
    table.insert(leased, now + lease)
    table.insert(leased, key)
  end
end
if #leased > 0 then redis.call('ZADD', leases, unpack(leased)) end
local result = {}
for _, entry in ipairs(claimed) do
  local key, fields = entry[1], entry[2]
  local decision = decide(prefix, now, holdUntil, rules[fields[3]], key, fields[4], fields[3], fields[2])
  table.insert(result, {key, fields[3], fields[4], fields[5], unpack(decision)})
end
return result
`;

/**
 * renew: ARGV = prefix, untilMs, then keys. Extends the leases of instances still being fired (ZADD
 * XX: an instance no longer leased stays out), 1,000 keys per command.
 */
export const RENEW = `
local prefix, untilMs = ARGV[1], ARGV[2]
local leases = prefix .. 'lease'
local args = {}
for i = 3, #ARGV do
  table.insert(args, untilMs)
  table.insert(args, ARGV[i])
  if #args == 2000 or i == #ARGV then
    redis.call('ZADD', leases, 'XX', unpack(args))
    args = {}
  end
end
return #ARGV - 2
`;

/**
 * fire: ARGV = prefix, nowMs, holdUntilMs, rules JSON ({automation: rule}), then (key, profileId,
 * automation) per claimed instance. One decision per instance, in order (see fireOne).
 */
export const FIRE = `${helpers}
local prefix, now, holdUntil, rules = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), cjson.decode(ARGV[4])
local result = {}
for i = 5, #ARGV, 3 do
  table.insert(result, fireOne(prefix, now, holdUntil, rules[ARGV[i + 2]], ARGV[i], ARGV[i + 1], ARGV[i + 2]))
end
return result
`;

/**
 * done: ARGV = prefix, then (key, profileId, automation) per instance whose send job is published:
 * each instance ends, counted as sent. Returns how many ended (a repeated done counts nothing).
 */
export const DONE = `${helpers}
local prefix = ARGV[1]
local count, sent, ended = 0, {}, {}
for i = 2, #ARGV, 3 do
  local key, automation = ARGV[i], ARGV[i + 2]
  if redis.call('DEL', prefix .. 'i:' .. key) == 1 then
    markEnded(prefix, key)
    redis.call('SREM', prefix .. 'pi:' .. ARGV[i + 1], key)
    table.insert(ended, key)
    sent[automation] = (sent[automation] or 0) + 1
    count = count + 1
  end
end
-- A key left in the timers (a lease that lapsed meanwhile) is dropped by the next claim.
if #ended > 0 then redis.call('ZREM', prefix .. 'lease', unpack(ended)) end
for automation, n in pairs(sent) do
  local stats = prefix .. 'astats:' .. automation
  redis.call('HINCRBY', stats, 'waiting', -n)
  redis.call('HINCRBY', stats, 'sent', n)
end
return count
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

/** instances: ARGV = prefix, profileId. The profile's instances as {json, trigger} pairs (as claim). */
export const INSTANCES = `
local prefix, profileId = ARGV[1], ARGV[2]
local result = {}
for _, key in ipairs(redis.call('SMEMBERS', prefix .. 'pi:' .. profileId)) do
  local fields = redis.call('HMGET', prefix .. 'i:' .. key, 'json', 'trigger')
  if fields[1] then
    table.insert(result, fields[1])
    table.insert(result, fields[2] or '')
  else
    redis.call('SREM', prefix .. 'pi:' .. profileId, key)
  end
end
return result
`;

// Lua scripts that change a profile atomically. All keys of a namespace share the hash tag
// {<namespace>} (runtime/wire keys), so a script that builds keys from the namespace prefix stays
// in one Redis Cluster slot, as BullMQ's scripts do with their queue prefix.

/** Shared helpers, prepended to each script. */
const helpers = `
local function domainOf(email)
  return string.match(email, "@(.+)$") or ""
end
local function touch(prefix, id, profile, nowMs, nowIso)
  if redis.call('HSETNX', profile, 'createdAt', nowIso) == 1 then
    redis.call('HSET', profile, 'id', id)
  end
  redis.call('HSET', profile, 'updatedAt', nowIso)
  -- GT keeps the latest activity and still adds a new member.
  redis.call('ZADD', prefix .. 'activity', 'GT', nowMs, id)
end
`;

/**
 * identify: ARGV = prefix, id, nowMs, nowIso, patch JSON, maxFields, mustExist ("1" or "0").
 * patch: {set: {attr: jsonValue}, unset: [attr], email?: string ("" removes), subscription?:
 * {status, source}, language?, timezone? ("" removes), pushAdd: {hash: json}, pushRemove: [hash]}.
 * Returns {created (0/1), error or ""}. Writes nothing when the profile would exceed maxFields.
 */
export const IDENTIFY = `${helpers}
local prefix, id, nowMs, nowIso = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local patch = cjson.decode(ARGV[5])
local maxFields = tonumber(ARGV[6])
local profile = prefix .. 'p:' .. id
if ARGV[7] == '1' and redis.call('EXISTS', profile) == 0 then
  return {0, 'not_found'}
end
local added = 0
for name, _ in pairs(patch.set) do
  if redis.call('HEXISTS', profile, 'a:' .. name) == 0 then added = added + 1 end
end
for hash, _ in pairs(patch.pushAdd) do
  if redis.call('HEXISTS', profile, 'w:' .. hash) == 0 then added = added + 1 end
end
if redis.call('HLEN', profile) + added > maxFields then
  return {0, 'too_many_fields'}
end
local created = redis.call('EXISTS', profile) == 0 and 1 or 0
touch(prefix, id, profile, nowMs, nowIso)
redis.call('HSET', profile, 'lastActivityAt', nowIso)
for name, value in pairs(patch.set) do redis.call('HSET', profile, 'a:' .. name, value) end
for _, name in ipairs(patch.unset) do redis.call('HDEL', profile, 'a:' .. name) end
if patch.email ~= nil then
  local old = redis.call('HGET', profile, 'email')
  if old and old ~= patch.email then
    redis.call('SREM', prefix .. 'email:' .. old, id)
    redis.call('SREM', prefix .. 'domain:' .. domainOf(old), id)
  end
  if patch.email == '' then
    redis.call('HDEL', profile, 'email')
  else
    redis.call('HSET', profile, 'email', patch.email)
    redis.call('SADD', prefix .. 'email:' .. patch.email, id)
    redis.call('SADD', prefix .. 'domain:' .. domainOf(patch.email), id)
  end
end
if patch.subscription ~= nil then
  local old = redis.call('HGET', profile, 'emailSubscription')
  if old ~= patch.subscription.status then
    redis.call('HSET', profile, 'emailSubscription', patch.subscription.status, 'emailSubscriptionAt', nowIso)
    local subs = prefix .. 's:' .. id
    redis.call('LPUSH', subs, cjson.encode({status = patch.subscription.status, at = nowIso, source = patch.subscription.source}))
    redis.call('LTRIM', subs, 0, 49)
  end
end
for _, field in ipairs({'language', 'timezone'}) do
  if patch[field] ~= nil then
    if patch[field] == '' then redis.call('HDEL', profile, field) else redis.call('HSET', profile, field, patch[field]) end
  end
end
for hash, value in pairs(patch.pushAdd) do redis.call('HSET', profile, 'w:' .. hash, value) end
for _, hash in ipairs(patch.pushRemove) do redis.call('HDEL', profile, 'w:' .. hash) end
return {created, ''}
`;

/**
 * record events: ARGV = prefix, nowMs, nowIso, historyMax, seenTtlSeconds, then per event:
 * eventId, profileId, event JSON, event time ms, event timestamp (RFC 3339). The event JSON is
 * stored, never decoded: cjson refuses some strings JSON.stringify writes (lone surrogates). Returns 1 (recorded) or 0 (already recorded)
 * per event. Activity is scored at the event's time but never in the future, so a client clock
 * ahead of ours cannot keep a profile from the inactive purge.
 */
export const RECORD_EVENTS = `${helpers}
local prefix, nowMs, nowIso = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local historyMax, seenTtl = tonumber(ARGV[4]), tonumber(ARGV[5])
local results = {}
for i = 6, #ARGV, 5 do
  local eventId, id, json, atMs = ARGV[i], ARGV[i + 1], ARGV[i + 2], math.min(tonumber(ARGV[i + 3]), nowMs)
  local timestamp = ARGV[i + 4]
  if redis.call('SET', prefix .. 'evseen:' .. eventId, '1', 'NX', 'EX', seenTtl) then
    local profile = prefix .. 'p:' .. id
    touch(prefix, id, profile, atMs, nowIso)
    local events = prefix .. 'e:' .. id
    redis.call('LPUSH', events, json)
    redis.call('LTRIM', events, 0, historyMax - 1)
    local last = redis.call('HGET', profile, 'lastActivityMs')
    if not last or tonumber(last) < atMs then
      redis.call('HSET', profile, 'lastActivityMs', atMs, 'lastActivityAt', timestamp)
    end
    table.insert(results, 1)
  else
    table.insert(results, 0)
  end
end
return results
`;

/**
 * erase: ARGV = prefix, id. Removes the profile, its history and its index entries.
 * Returns {existed, events, pushSubscriptions, hadEmail}.
 */
export const ERASE = `${helpers}
local prefix, id = ARGV[1], ARGV[2]
local profile = prefix .. 'p:' .. id
local existed = redis.call('EXISTS', profile)
local email = redis.call('HGET', profile, 'email')
local push = 0
for _, field in ipairs(redis.call('HKEYS', profile)) do
  if string.sub(field, 1, 2) == 'w:' then push = push + 1 end
end
local events = redis.call('LLEN', prefix .. 'e:' .. id)
if email then
  redis.call('SREM', prefix .. 'email:' .. email, id)
  redis.call('SREM', prefix .. 'domain:' .. domainOf(email), id)
end
redis.call('DEL', profile, prefix .. 'e:' .. id, prefix .. 's:' .. id)
local indexed = redis.call('ZREM', prefix .. 'activity', id)
return {math.max(existed, indexed), events, push, email and 1 or 0}
`;

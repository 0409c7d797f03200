// Lua scripts of the delivery pipeline: one round trip per fetched batch to claim sends and read
// their profiles, one to take rate-limit tokens, one to record outcomes. Keys are built from the
// namespace prefix and share its hash tag (see runtime/wire keys).

/**
 * prepare: ARGV = prefix, owner, claimTtlMs, then per job: sendId, profileId.
 * Per job returns {state, profileFields, suppressed, ttl, outcome}: state "claimed" | "done" |
 * "busy"; profileFields is HGETALL's flat array (empty when the profile does not exist);
 * suppressed is the suppression record of the profile's email or false; ttl is a busy claim's
 * remaining ms; outcome is a done send's recorded outcome ("sent", "skipped:<reason>", ...).
 */
export const PREPARE = `
local prefix, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local results = {}
for i = 4, #ARGV, 2 do
  local sendId, profileId = ARGV[i], ARGV[i + 1]
  local record = prefix .. 'send:' .. sendId
  local current = redis.call('GET', record)
  if current and string.sub(current, 1, 5) == 'done:' then
    table.insert(results, {'done', {}, false, 0, string.sub(current, 6)})
  elseif current then
    table.insert(results, {'busy', {}, false, redis.call('PTTL', record)})
  else
    redis.call('SET', record, 'pending:' .. owner, 'PX', ttl)
    local profile = redis.call('HGETALL', prefix .. 'p:' .. profileId)
    local email = redis.call('HGET', prefix .. 'p:' .. profileId, 'email')
    local suppressed = false
    if email then suppressed = redis.call('HGET', prefix .. 'suppressed', email) or false end
    table.insert(results, {'claimed', profile, suppressed})
  end
end
return results
`;

/**
 * complete: ARGV = prefix, owner, doneTtlSeconds, then per job: sendId, outcome. An outcome of ""
 * releases the claim if this owner still holds it (a transient failure: the redelivery claims
 * again); any other marks the send done.
 */
export const COMPLETE = `
local prefix, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  local record = prefix .. 'send:' .. ARGV[i]
  if ARGV[i + 1] == '' then
    if redis.call('GET', record) == 'pending:' .. owner then redis.call('DEL', record) end
  else
    redis.call('SET', record, 'done:' .. ARGV[i + 1], 'EX', ttl)
  end
end
return #ARGV
`;

/** extend: ARGV = prefix, owner, ttlMs, then sendIds. Extends the claims this owner still holds. */
export const EXTEND = `
local prefix, owner, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local extended = 0
for i = 4, #ARGV do
  local record = prefix .. 'send:' .. ARGV[i]
  if redis.call('GET', record) == 'pending:' .. owner then
    redis.call('PEXPIRE', record, ttl)
    extended = extended + 1
  end
end
return extended
`;

/**
 * take: token buckets shared by every replica, on Redis' clock. ARGV = globalKey, rate, burst
 * (rate 0 = unlimited), n, then per message: domainKey ("" = none), rate, burst. A message is
 * granted when its global and domain buckets both have a token. Returns {grants (1/0 each),
 * waitMs until the next token of a bucket that refused}.
 */
export const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local buckets = {}
local function bucket(key, rate, burst)
  local b = buckets[key]
  if b then return b end
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  b = {key = key, rate = rate, burst = burst, tokens = tokens}
  buckets[key] = b
  return b
end
local globalKey, rate, burst, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local global = nil
if rate > 0 then global = bucket(globalKey, rate, burst) end
local grants = {}
local wait = 0
local function waitFor(b)
  local ms = math.ceil((1 - b.tokens) * 1000 / b.rate)
  if ms < 1 then ms = 1 end
  if wait == 0 or ms < wait then wait = ms end
end
for i = 0, n - 1 do
  local dkey, drate, dburst = ARGV[5 + i * 3], tonumber(ARGV[6 + i * 3]), tonumber(ARGV[7 + i * 3])
  local domain = nil
  if dkey ~= '' then domain = bucket(dkey, drate, dburst) end
  local ok = true
  if global and global.tokens < 1 then ok = false; waitFor(global) end
  if domain and domain.tokens < 1 then ok = false; waitFor(domain) end
  if ok then
    if global then global.tokens = global.tokens - 1 end
    if domain then domain.tokens = domain.tokens - 1 end
    grants[i + 1] = 1
  else
    grants[i + 1] = 0
  end
end
for _, b in pairs(buckets) do
  redis.call('HSET', b.key, 'tokens', tostring(b.tokens), 'ts', now)
  redis.call('PEXPIRE', b.key, math.ceil(b.burst * 1000 / b.rate) + 1000)
end
return {grants, wait}
`;

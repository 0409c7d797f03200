// Lua scripts of the send-policy stage: one round trip per batch for the frequency caps, one for the
// decision counts, one per paused-able target for auto-pause. Keys share the namespace's hash tag.

/**
 * caps: ARGV = now, then per send: id, count n, then n times (cap key, max, windowMs).
 * Returns per send 0 when every cap had room (the send is then counted in each), or the 1-based
 * index of the first full cap (and nothing is counted). A send already counted (a redelivery)
 * always passes: ZADD NX keeps its first time.
 */
export const CAPS = `
local now = tonumber(ARGV[1])
local results = {}
local i = 2
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  local first = i + 2
  local full = 0
  for c = 0, n - 1 do
    local key, max, window = ARGV[first + c * 3], tonumber(ARGV[first + c * 3 + 1]), tonumber(ARGV[first + c * 3 + 2])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if full == 0 and not redis.call('ZSCORE', key, id) and redis.call('ZCARD', key) >= max then full = c + 1 end
  end
  if full == 0 then
    for c = 0, n - 1 do
      local key, window = ARGV[first + c * 3], tonumber(ARGV[first + c * 3 + 2])
      redis.call('ZADD', key, 'NX', now, id)
      redis.call('PEXPIRE', key, window)
    end
  end
  table.insert(results, full)
  i = first + n * 3
end
return results
`;

/**
 * decided: ARGV = decisions key, marker prefix, marker ttl (s), then per decision: send id,
 * field (<policy>:<reason>), once ("1" for holds: a held send is looked at again and again, and
 * counted only the first time).
 */
export const DECIDED = `
local decisions, markers, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local id, field, once = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if once ~= '1' or redis.call('SET', markers .. field .. ':' .. id, '1', 'NX', 'EX', ttl) then
    redis.call('HINCRBY', decisions, field, 1)
  end
end
return 1
`;

/**
 * outcomes: ARGV = outcomes key, pauses key, target, now, bucketMs, windowMs, sends, bounced,
 * failed, now as RFC 3339, then per policy: name, minSends, bounceRate, failureRate (-1 when not set).
 * Adds the batch's counts to the current bucket, forgets buckets out of the window, and pauses the
 * target (once; a person clears it) when a rate crosses a policy's threshold. Returns the pause as
 * JSON when this call created it.
 */
export const OUTCOMES = `
local key, pauses, target = ARGV[1], ARGV[2], ARGV[3]
local now, bucketMs, windowMs = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local bucket = math.floor(now / bucketMs)
local oldest = math.floor((now - windowMs) / bucketMs)
redis.call('HINCRBY', key, bucket .. ':sends', tonumber(ARGV[7]))
redis.call('HINCRBY', key, bucket .. ':bounced', tonumber(ARGV[8]))
redis.call('HINCRBY', key, bucket .. ':failed', tonumber(ARGV[9]))
redis.call('PEXPIRE', key, windowMs + bucketMs)
local totals = { sends = 0, bounced = 0, failed = 0 }
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  local sep = string.find(flat[i], ':', 1, true)
  local b, kind = tonumber(string.sub(flat[i], 1, sep - 1)), string.sub(flat[i], sep + 1)
  if b <= oldest then redis.call('HDEL', key, flat[i]) else totals[kind] = (totals[kind] or 0) + tonumber(flat[i + 1]) end
end
if redis.call('HEXISTS', pauses, target) == 1 then return false end
for i = 11, #ARGV, 4 do
  local policy, minSends = ARGV[i], tonumber(ARGV[i + 1])
  local bounceRate, failureRate = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  if totals.sends >= minSends then
    local reason, rate = nil, 0
    if bounceRate >= 0 and totals.bounced / totals.sends >= bounceRate then
      reason, rate = 'bounceRate', totals.bounced / totals.sends
    elseif failureRate >= 0 and totals.failed / totals.sends >= failureRate then
      reason, rate = 'failureRate', totals.failed / totals.sends
    end
    if reason then
      local pause = cjson.encode({ policy = policy, reason = reason, rate = rate, sends = totals.sends, at = ARGV[10] })
      redis.call('HSET', pauses, target, pause)
      return pause
    end
  end
end
return false
`;

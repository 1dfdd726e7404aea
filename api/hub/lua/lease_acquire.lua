-- KEYS: conns, conn[, a key of the same user to read back]
-- ARGV: conn id, limit, lease ms, session id, instance id, connected at, run, dead runs...
-- Returns 0 (refused), or 1; with a third key, {1, its value or nil}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
local held = redis.call('ZCARD', KEYS[1])
if held >= limit and #ARGV > 7 then
  local dead = {}
  for i = 8, #ARGV do dead[ARGV[i]] = true end
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    local at = string.find(member, '@', 1, true)
    if at and dead[string.sub(member, at + 1)] then
      redis.call('ZREM', KEYS[1], member)
      held = held - 1
    end
  end
end
if held >= limit then
  return 0
end
local lease = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now + lease, ARGV[1] .. '@' .. ARGV[7])
redis.call('PEXPIRE', KEYS[1], lease)
redis.call('HSET', KEYS[2], 'connection_id', ARGV[1], 'session_id', ARGV[4],
           'instance_id', ARGV[5], 'connected_at', ARGV[6])
redis.call('PEXPIRE', KEYS[2], lease)
if KEYS[3] then return {1, redis.call('GET', KEYS[3])} end
return 1

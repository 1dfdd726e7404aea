-- KEYS: conns, conn[, a key of the same user to read back]
-- ARGV: conn id, limit, lease ms, session id, instance id, connected at, run, dead runs...
-- Returns 0 (refused), or 1; with a third key, {1, its value or nil}.
-- Runs after lease_lib.lua's functions (leases.ACQUIRE_LUA joins them).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not take_lease(KEYS[1], KEYS[2], now, ARGV, 1, ARGV[4]) then
  return 0
end
if KEYS[3] then return {1, redis.call('GET', KEYS[3])} end
return 1

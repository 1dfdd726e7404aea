-- KEYS: bucket[, ban] (one key: no ban to check; every key in one hash tag)   ARGV: rate per s, burst
-- Returns {allowed 1/0, retry after ms, banned ms left (0 when not banned)}.
-- Runs after bucket_lib.lua's functions (rate_limits.BUCKET_LUA joins them).
if KEYS[2] then
  local banned = ban_left(KEYS[2])
  if banned > 0 then return {0, banned, banned} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local allowed, wait = take_token(KEYS[1], ARGV[1], ARGV[2], now)
return {allowed, wait, 0}

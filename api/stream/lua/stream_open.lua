-- A stream open's checks in one call, on a single Redis only (api/stream/admission.py).
-- KEYS: sse-token, IP bucket, IP ban (the bucket of action ``stream``; the address's hash tag)
-- ARGV: 1-2 the IP's rate per s, burst; 3-4 the user's ('' '' for no user bucket);
--       5-12 the user's bucket, conns, conn and prefs keys, each as the text before and the
--       text after the user id; 13... lease_acquire.lua's ARGV (its session id unused: the
--       token's is taken).
-- Returns {} when the token is unknown or spent. Else {token holder JSON, ban ms left,
-- IP allowed 1/0, IP retry ms, user allowed 1/0, user retry ms, leased 1/0[, preferences]}:
-- the token is spent, both buckets charged unless the address is banned (then only the
-- user's), a lease taken only when all allowed, the preferences read when it was (absent
-- when the user has none). As the stepwise path: rate_bucket.lua, lease_acquire.lua, GETDEL.
-- The user is known only from the token, so their keys are put together here from the
-- layout's parts instead of being declared in KEYS: this is why a cluster cannot run it.
-- Runs after bucket_lib.lua's and lease_lib.lua's functions (admission.OPEN_LUA joins them).
local holder = redis.call('GETDEL', KEYS[1])
if not holder then return {} end
local token = cjson.decode(holder)
local user, session = token[1], token[2]
if type(session) ~= 'string' then session = '' end
local function user_key(at) return ARGV[at] .. user .. ARGV[at + 1] end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local banned = ban_left(KEYS[3])
local ip_allowed, ip_wait = 0, banned
if banned == 0 then
  ip_allowed, ip_wait = take_token(KEYS[2], ARGV[1], ARGV[2], now)
end
local user_allowed, user_wait = 1, 0
if ARGV[3] ~= '' then
  user_allowed, user_wait = take_token(user_key(5), ARGV[3], ARGV[4], now)
end
local checks = {holder, banned, ip_allowed, ip_wait, user_allowed, user_wait}
if banned > 0 or ip_allowed == 0 or user_allowed == 0
    or not take_lease(user_key(7), user_key(9), now, ARGV, 13, session) then
  checks[7] = 0
  return checks
end
checks[7] = 1
checks[8] = redis.call('GET', user_key(11))
return checks

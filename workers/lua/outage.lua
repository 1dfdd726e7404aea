-- The outage detector of one dependency (docs/redis.md, docs/operations.md "Outages").
-- KEYS: 1 outage hash, 2 failures zset (task ids), 3 failing users zset, 4 notified set;
--       all under one hash tag {dep:<dependency>}.
-- ARGV: 1 "fail", "ok" or "check", 2 now (ms), 3 window (ms), 4 threshold, 5 task id, 6 user
--       id (may be empty), 7 ttl of the outage state (ms), 8 quiet period (ms).
-- "fail" returns {opened (0/1), users to send system.error now...}: when this failure makes
--   the distinct failing tasks in the window reach the threshold, every user who failed in
--   the window; while the outage lasts, this user if not told yet. Each user once per outage.
--   While the outage lasts, it moves the outage's last failure (failed_at) to now.
-- "ok" (the dependency just worked) and "check" (no news, only the clock) return {users to
--   tell it recovered...}: every user told of the outage, which ends, once the outage is
--   settled: a success came after its last failure (ok_at > failed_at), and no failure for
--   the quiet period. Otherwise nothing: a dependency failing half the time keeps its outage.
-- Atomic, so any number of worker processes send one notice per user per outage.
local now = tonumber(ARGV[2])
if ARGV[1] ~= "fail" then
  if redis.call("EXISTS", KEYS[1]) == 0 then
    return {}
  end
  if ARGV[1] == "ok" then
    redis.call("HSET", KEYS[1], "ok_at", now)
  end
  local state = redis.call("HMGET", KEYS[1], "failed_at", "ok_at")
  local failed_at = tonumber(state[1]) or 0
  local ok_at = tonumber(state[2])
  if ok_at == nil or ok_at <= failed_at or now - failed_at < tonumber(ARGV[8]) then
    return {}
  end
  local told = redis.call("SMEMBERS", KEYS[4])
  redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return told
end

local window = tonumber(ARGV[3])
local ttl = tonumber(ARGV[7])
local user = ARGV[6]
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now - window)
redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", now - window)
redis.call("ZADD", KEYS[2], now, ARGV[5])
redis.call("PEXPIRE", KEYS[2], window)
if user ~= "" then
  redis.call("ZADD", KEYS[3], now, user)
  redis.call("PEXPIRE", KEYS[3], window)
end

local result = {0}
if redis.call("EXISTS", KEYS[1]) == 0 then
  if redis.call("ZCARD", KEYS[2]) < tonumber(ARGV[4]) then
    return result
  end
  redis.call("HSET", KEYS[1], "opened_at", now)
  result[1] = 1
  for _, failing in ipairs(redis.call("ZRANGE", KEYS[3], 0, -1)) do
    if redis.call("SADD", KEYS[4], failing) == 1 then
      table.insert(result, failing)
    end
  end
elseif user ~= "" and redis.call("SADD", KEYS[4], user) == 1 then
  table.insert(result, user)
end
redis.call("HSET", KEYS[1], "failed_at", now)
redis.call("PEXPIRE", KEYS[1], ttl)
redis.call("PEXPIRE", KEYS[4], ttl)
return result

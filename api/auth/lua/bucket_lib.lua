-- Functions, no script of their own: joined ahead of rate_bucket.lua here and of
-- api/stream/lua/stream_open.lua (``rate_limits.BUCKET_FUNCTIONS``).
-- ban_left(ban key): ms of ban left, 0 when the address is not banned.
-- take_token(bucket key, rate per s, burst, now ms): allowed 1/0, retry after ms (0 if allowed).
local function ban_left(key)
  local banned = redis.call('PTTL', key)
  if banned > 0 then return banned end
  return 0
end

local function take_token(key, per_second, burst, now)
  local rate = tonumber(per_second) / 1000
  burst = tonumber(burst)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  local allowed, wait = 0, 0
  if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
  else
    wait = math.ceil((1 - tokens) / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', key, math.ceil(burst / rate) + 1000)
  return allowed, wait
end

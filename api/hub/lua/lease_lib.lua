-- Functions, no script of their own: joined ahead of lease_acquire.lua here and of
-- api/stream/lua/stream_open.lua (``leases.LEASE_FUNCTIONS``).
-- take_lease(conns key, conn key, now ms, args, first, session id): takes one lease of the
-- user; false when they already hold ``limit`` live ones. ``args`` from index ``first`` are
-- lease_acquire.lua's ARGV: conn id, limit, lease ms, session id (not read: ``session`` is),
-- instance id, connected at, run, dead runs... Lapsed leases are dropped first and, at the
-- limit, the leases of dead runs.
local function take_lease(conns, conn, now, args, first, session)
  local id, limit, lease = args[first], tonumber(args[first + 1]), tonumber(args[first + 2])
  local run = args[first + 6]
  redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
  local held = redis.call('ZCARD', conns)
  if held >= limit and #args > first + 6 then
    local dead = {}
    for i = first + 7, #args do dead[args[i]] = true end
    for _, member in ipairs(redis.call('ZRANGE', conns, 0, -1)) do
      local at = string.find(member, '@', 1, true)
      if at and dead[string.sub(member, at + 1)] then
        redis.call('ZREM', conns, member)
        held = held - 1
      end
    end
  end
  if held >= limit then return false end
  redis.call('ZADD', conns, now + lease, id .. '@' .. run)
  redis.call('PEXPIRE', conns, lease)
  redis.call('HSET', conn, 'connection_id', id, 'session_id', session,
             'instance_id', args[first + 4], 'connected_at', args[first + 5])
  redis.call('PEXPIRE', conn, lease)
  return true
end

-- KEYS, per stream: events, meta, seen ids[, tasks index, task hash...]
-- ARGV: epoch candidate, retention ms, max length, number of streams, then per stream:
--       channel, n, number of task hashes, payload 1..n, event id 1..n ('' for events that are
--       not deduplicated), then per task hash: task id, number of field/value items, items
-- An event whose id is already in the stream's seen set (an outbox re-push) is neither added
-- nor published; its slot in the stream's result is ''. Result: per stream {epoch, ids...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[2])
local max_length = ARGV[3]
local k = 0
local a = 4
local out = {}
for s = 1, tonumber(ARGV[4]) do
  local events, meta, seen = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  k = k + 3
  local channel = ARGV[a + 1]
  local n = tonumber(ARGV[a + 2])
  local hashes = tonumber(ARGV[a + 3])
  a = a + 3
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = ARGV[1]
    redis.call('HSET', meta, 'epoch', epoch)
  end
  local result = {epoch}
  local dedupe = false
  for i = 1, n do
    local payload = ARGV[a + i]
    local event_id = ARGV[a + n + i]
    if event_id ~= '' and redis.call('ZADD', seen, 'NX', now, event_id) == 0 then
      result[i + 1] = ''
    else
      local id = redis.call('XADD', events, '*', 'e', payload)
      result[i + 1] = id
      redis.call('PUBLISH', channel, epoch .. ' ' .. id .. ' ' .. payload)
    end
    if event_id ~= '' then dedupe = true end
  end
  a = a + 2 * n
  if dedupe then
    redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - retention)
    redis.call('PEXPIRE', seen, retention)
  end
  local trimmed = redis.call('XTRIM', events, 'MAXLEN', '~', max_length)
  trimmed = trimmed + redis.call('XTRIM', events, 'MINID', '~', now - retention)
  if trimmed > 0 then
    local first = redis.call('XRANGE', events, '-', '+', 'COUNT', 1)
    redis.call('HSET', meta, 'trimmed_before', first[1][1])
  end
  redis.call('PEXPIRE', events, retention)
  redis.call('PEXPIRE', meta, retention)
  if hashes > 0 then
    local tasks = KEYS[k + 1]
    k = k + 1
    for h = 1, hashes do
      local task = KEYS[k + h]
      local items = tonumber(ARGV[a + 2])
      redis.call('HSET', task, unpack(ARGV, a + 3, a + 2 + items))
      redis.call('PEXPIRE', task, retention)
      redis.call('ZADD', tasks, now, ARGV[a + 1])
      a = a + 2 + items
    end
    k = k + hashes
    redis.call('ZREMRANGEBYSCORE', tasks, '-inf', now - retention)
    redis.call('PEXPIRE', tasks, retention)
  end
  out[s] = result
end
return out

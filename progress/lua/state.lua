-- KEYS: events, meta   ARGV: epoch candidate, retention ms
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[1])
if redis.call('PTTL', KEYS[2]) < 0 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local trimmed = redis.call('HGET', KEYS[2], 'trimmed_before') or ''
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last_id = '0-0'
if last[1] then last_id = last[1][1] end
return {epoch, last_id, trimmed}

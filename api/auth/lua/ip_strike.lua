-- KEYS: strikes, ban   ARGV: window ms, ban after, ban ms   Returns ban ms left (0: not banned).
local banned = redis.call('PTTL', KEYS[2])
if banned > 0 then return banned end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[3])
end
return 0

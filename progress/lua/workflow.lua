-- KEYS: workflow hash, running tasks sorted set (both under the owner's tag)
-- ARGV: retention ms (0: leave the expiry alone), throttle ms, running list bound, n, then n transitions of 5 items:
--       kind, task id, weight, task name, reason. kind: queued started alive completed failed
--       cancelled retrying stalled cancel peek (reads only, with the running list). n = 0: only release a held (trailing) value.
-- A task's own field t:<id> = "<state>|<weight>|<name>" (q queued, r running, s stalled, c
-- completed, f failed, x cancelled) makes every transition idempotent: a repeated or late
-- transition changes nothing. Cost per transition is O(1); no child is ever enumerated.
-- Reply: {emit, due ms, known, completed, failed, cancelled, stalled, total weight, ended
-- weight, state, failed task, failed reason, first ms, now ms, finished, running id/name...}
-- emit: 0 held (due ms is when to ask again), 1 send, 2 send as important (state changed or
-- the workflow finished). A workflow that finished is sent one throttle interval later (if
-- still finished then), so a group still being sent never looks finished for a moment.
local h, running = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention, throttle, bound = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local changed = false
local peek = false

local function incr(field, by) redis.call('HINCRBYFLOAT', h, field, by) end

local function get(id)
  local v = redis.call('HGET', h, 't:' .. id)
  if not v then return nil end
  local state, weight, name = string.match(v, '^(%a)|([^|]*)|(.*)$')
  return state, tonumber(weight), name
end

local function put(id, state, weight, name)
  redis.call('HSET', h, 't:' .. id, state .. '|' .. weight .. '|' .. name)
  changed = true
end

local function ensure(id, weight, name)
  local state, w, known_name = get(id)
  if state then return state, w, known_name end
  put(id, 'q', weight, name)
  incr('known', 1)
  incr('total_w', weight)
  if not redis.call('HGET', h, 'first_ms') then redis.call('HSET', h, 'first_ms', now) end
  return 'q', weight, name
end

local function leave(id, state, weight)
  -- the task leaves its current state: undo what that state counted
  if state == 's' then incr('stalled', -1) end
  if state == 'f' then incr('failed', -1) incr('ended_w', -weight) end
  if state == 'r' or state == 's' then redis.call('ZREM', running, id) end
end

local terminal = {c = true, f = true, x = true}
local a = 4
for i = 1, n do
  local kind, id, weight, name, reason =
    ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4], ARGV[a + 5]
  a = a + 5
  if kind == 'peek' then
    peek = true
  elseif kind == 'cancel' then
    if not redis.call('HGET', h, 'cancel') then redis.call('HSET', h, 'cancel', now) changed = true end
  else
    local state, w, known_name = ensure(id, weight, name)
    if name == '' then name = known_name end
    if kind == 'started' or kind == 'alive' then
      if state == 'q' or state == 's' then
        leave(id, state, w)
        put(id, 'r', w, name)
        redis.call('ZADD', running, now, id)
      end
    elseif kind == 'stalled' then
      if state == 'r' then put(id, 's', w, name) incr('stalled', 1) end
    elseif kind == 'retrying' then
      if state ~= 'c' and state ~= 'x' and state ~= 'q' then
        leave(id, state, w)
        put(id, 'q', w, name)
        incr('retries', 1)
      end
    elseif not terminal[state] or (state == 'f' and kind == 'completed') then
      local to = ({completed = 'c', failed = 'f', cancelled = 'x'})[kind]
      if to then
        leave(id, state, w)
        put(id, to, w, name)
        incr(kind, 1)
        incr('ended_w', w)
        if to == 'f' and not redis.call('HGET', h, 'failed_task') then
          redis.call('HSET', h, 'failed_task', id, 'failed_reason', reason)
        end
      end
    end
  end
end

local function num(field) return tonumber(redis.call('HGET', h, field) or '0') end
local known, completed, failed, cancelled = num('known'), num('completed'), num('failed'), num('cancelled')
local finished = known > 0 and completed + failed + cancelled >= known
local state = 'running'
if redis.call('HGET', h, 'cancel') then state = 'cancelled'
elseif failed > 0 then state = 'failed'
elseif finished then state = (cancelled > 0) and 'cancelled' or 'completed' end

local emit = 0
local due = 0
local last = num('last_emit_ms')
local was = redis.call('HGET', h, 'state') or 'running'
local was_finished = redis.call('HGET', h, 'finished') == '1'
-- Finishing settles for one throttle interval before it is sent: while a group is still being
-- sent, fast workers can end every task known so far, and the workflow must not flicker
-- between finished and running. Failing and cancelling are sent at once.
if changed and finished then redis.call('HSET', h, 'settle_ms', now + throttle) end
if changed or redis.call('HGET', h, 'dirty') == '1' then
  local at = last + throttle
  if finished then at = math.max(at, num('settle_ms')) end
  local urgent = changed and state ~= was and (state == 'failed' or state == 'cancelled')
  if urgent or now >= at then
    emit = (state ~= was or finished ~= was_finished) and 2 or 1
  else
    redis.call('HSET', h, 'dirty', '1')
    due = at
  end
end
if emit > 0 then
  redis.call('HSET', h, 'last_emit_ms', now, 'dirty', '0', 'state', state, 'finished', finished and '1' or '0')
end
if retention > 0 then  -- 0: a read (peek) that must not shorten the keys' life
  redis.call('PEXPIRE', h, retention)
  redis.call('PEXPIRE', running, retention)
end

local out = {emit, due, known, completed, failed, cancelled, num('stalled'),
  tostring(num('total_w')), tostring(num('ended_w')), state, redis.call('HGET', h, 'failed_task') or '',
  redis.call('HGET', h, 'failed_reason') or '', num('first_ms'), now, finished and 1 or 0}
if emit > 0 or peek then
  for _, id in ipairs(redis.call('ZRANGE', running, 0, bound - 1)) do
    local _, _, name = get(id)
    out[#out + 1] = id
    out[#out + 1] = name or ''
  end
end
return out

-- KEYS: workflow hash, running tasks sorted set (both under the owner's tag)
-- ARGV: retention ms (0: leave the expiry alone), throttle ms (-1: send a held value now, as a
--       closing process does), running list bound, n, then n
--       transitions of 5 items: kind, task id, weight, task name, reason. kind: queued started
--       alive completed failed cancelled retrying stalled cancel peek (reads only, with the
--       running list). n = 0: only release a held (trailing) value.
-- A task's own field t:<id> = "<state>|<weight>|<name>" (q queued, r running, s stalled, c
-- completed, f failed, x cancelled) makes every transition idempotent: a repeated or late
-- transition changes nothing. Cost per transition is O(1) (its own field, the running set);
-- the counters are read once (HMGET) and written once (HSET) per call; no child is enumerated.
-- Reply: {emit, due ms, known, completed, failed, cancelled, stalled, total weight, ended
-- weight, state, failed task, failed reason, first ms, now ms, finished, running id/name...}
-- emit: 0 held (due ms is when to ask again), 1 send, 2 send as important (state changed or
-- the workflow finished). A workflow that finished is sent one throttle interval later (if
-- still finished then), so a group still being sent never looks finished for a moment.
local h, running = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention, throttle, bound = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local closing = throttle < 0
if closing then throttle = 0 end
local n = tonumber(ARGV[4])

local names = {'known', 'completed', 'failed', 'cancelled', 'stalled', 'retries', 'total_w',
  'ended_w', 'first_ms', 'last_emit_ms', 'settle_ms', 'dirty', 'finished', 'state', 'cancel',
  'failed_task', 'failed_reason'}
local raw = redis.call('HMGET', h, unpack(names))
local c, text = {}, {}
for i, name in ipairs(names) do
  text[name] = raw[i] or false
  c[name] = tonumber(raw[i] or '0') or 0
end
local dirty = {}
local changed, peek = false, false

local function add(field, by) c[field] = c[field] + by dirty[field] = true end

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
  add('known', 1)
  add('total_w', weight)
  if c.first_ms == 0 then c.first_ms = now dirty.first_ms = true end
  return 'q', weight, name
end

local function leave(id, state, weight)
  -- the task leaves its current state: undo what that state counted
  if state == 's' then add('stalled', -1) end
  if state == 'f' then add('failed', -1) add('ended_w', -weight) end
  if state == 'r' or state == 's' then redis.call('ZREM', running, id) end
end

local terminal = {c = true, f = true, x = true}
local ends = {completed = 'c', failed = 'f', cancelled = 'x'}
local a = 4
for _ = 1, n do
  local kind, id, weight, name, reason =
    ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), ARGV[a + 4], ARGV[a + 5]
  a = a + 5
  if kind == 'peek' then
    peek = true
  elseif kind == 'cancel' then
    if not text.cancel then text.cancel = tostring(now) dirty.cancel = true changed = true end
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
      if state == 'r' then put(id, 's', w, name) add('stalled', 1) end
    elseif kind == 'retrying' then
      if state ~= 'c' and state ~= 'x' and state ~= 'q' then
        leave(id, state, w)
        put(id, 'q', w, name)
        add('retries', 1)
      end
    elseif ends[kind] and (not terminal[state] or (state == 'f' and kind == 'completed')) then
      local to = ends[kind]
      leave(id, state, w)
      put(id, to, w, name)
      add(kind, 1)
      add('ended_w', w)
      if to == 'f' and not text.failed_task then
        text.failed_task, text.failed_reason = id, reason
        dirty.failed_task, dirty.failed_reason = true, true
      end
    end
  end
end

local finished = c.known > 0 and c.completed + c.failed + c.cancelled >= c.known
local state = 'running'
if text.cancel then state = 'cancelled'
elseif c.failed > 0 then state = 'failed'
elseif finished then state = (c.cancelled > 0) and 'cancelled' or 'completed' end

local emit, due = 0, 0
local was = text.state or 'running'
local was_finished = text.finished == '1'
-- Finishing settles for one throttle interval before it is sent: while a group is still being
-- sent, fast workers can end every task known so far, and the workflow must not flicker
-- between finished and running. Failing and cancelling are sent at once.
if changed and finished then c.settle_ms = now + throttle dirty.settle_ms = true end
-- A peek (a snapshot read) sends nothing, so it must not take a held value's turn either.
if not peek and (changed or text.dirty == '1') then
  local at = c.last_emit_ms + throttle
  if finished then at = math.max(at, c.settle_ms) end
  if closing then at = now end
  local urgent = changed and state ~= was and (state == 'failed' or state == 'cancelled')
  if urgent or now >= at then
    emit = (state ~= was or finished ~= was_finished) and 2 or 1
    c.last_emit_ms, text.dirty, text.state = now, '0', state
    text.finished = finished and '1' or '0'
    dirty.last_emit_ms, dirty.dirty, dirty.state, dirty.finished = true, true, true, true
  elseif text.dirty ~= '1' then
    text.dirty, dirty.dirty = '1', true
    due = at
  else
    due = at
  end
end

local writes = {}
for field in pairs(dirty) do
  local value = c[field]
  if field == 'dirty' or field == 'state' or field == 'finished' or field == 'cancel'
    or field == 'failed_task' or field == 'failed_reason' then value = text[field] end
  writes[#writes + 1] = field
  writes[#writes + 1] = tostring(value)
end
if #writes > 0 then redis.call('HSET', h, unpack(writes)) end
if retention > 0 and (changed or #writes > 0) then
  -- 0: a read (peek) that must not shorten the keys' life
  redis.call('PEXPIRE', h, retention)
  redis.call('PEXPIRE', running, retention)
end

local out = {emit, due, c.known, c.completed, c.failed, c.cancelled, c.stalled,
  tostring(c.total_w), tostring(c.ended_w), state, text.failed_task or '',
  text.failed_reason or '', c.first_ms, now, finished and 1 or 0}
if emit > 0 or peek then
  for _, id in ipairs(redis.call('ZRANGE', running, 0, bound - 1)) do
    local _, _, name = get(id)
    out[#out + 1] = id
    out[#out + 1] = name or ''
  end
end
return out

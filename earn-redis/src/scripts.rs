//! The Lua scripts: each runs atomically in Redis, so a dead letter is
//! never both acknowledged and lost, nor stored twice.
//!
//! `redis::Script` sends `EVALSHA` and loads the script on `NOSCRIPT`, so a
//! restarted (empty) server is handled.

use redis::Script;

/// Moves one pending entry to the dead-letter stream and acknowledges it,
/// in one step, and deletes its set of finished handlers. Copies the
/// entry's fields after the `dead:*` ones, which name the handlers that
/// gave up and those that had finished (one per line). Does nothing if the
/// entry is no longer pending for the group (another consumer finished
/// it). Returns 1 if dead-lettered, 0 if not pending.
///
/// KEYS: stream, dead, the entry's set of finished handlers.
/// ARGV: group, entry id, reason, deliveries, gave up, finished.
const DEAD_LETTER: &str = r"
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 0 then return 0 end
redis.call('DEL', KEYS[3])
local fields = {'dead:reason', ARGV[3], 'dead:deliveries', ARGV[4],
                'dead:group', ARGV[1], 'dead:entry', ARGV[2],
                'dead:gave_up', ARGV[5], 'dead:finished', ARGV[6]}
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 1 then
  for _, value in ipairs(found[1][2]) do table.insert(fields, value) end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
return 1
";

/// Puts a dead letter back into the stream (its original fields, as a new
/// entry, marked `for` the group that gave up on it, so the other groups,
/// which handled it already, skip it, and with the handlers of that group
/// that had `finished` with it, which skip it too) and deletes it from the
/// dead-letter stream, in one step.
/// Returns the new entry id, or false if there is no such dead letter.
///
/// KEYS: dead, stream. ARGV: dead letter id.
const REQUEUE: &str = r"
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields = {}
local group = false
local finished = ''
local raw = found[1][2]
for i = 1, #raw, 2 do
  if raw[i] == 'dead:group' then group = raw[i + 1] end
  if raw[i] == 'dead:finished' then finished = raw[i + 1] end
  if string.sub(raw[i], 1, 5) ~= 'dead:' and raw[i] ~= 'for' and raw[i] ~= 'finished' then
    table.insert(fields, raw[i])
    table.insert(fields, raw[i + 1])
  end
end
if #fields == 0 then return redis.error_reply('ERR the dead letter holds no entry fields to requeue') end
if group then
  table.insert(fields, 'for')
  table.insert(fields, group)
end
if finished ~= '' then
  table.insert(fields, 'finished')
  table.insert(fields, finished)
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
";

/// Deletes the dead-letter stream; returns how many entries it held.
///
/// KEYS: dead.
const PURGE: &str = r"
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
";

/// Schedules an event: score = the server's clock + delay, so machines
/// with skewed clocks agree on when it is due.
///
/// KEYS: delayed. ARGV: delay in ms, member (`name\njson`).
const SCHEDULE: &str = r"
local t = redis.call('TIME')
local due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], string.format('%.0f', due), ARGV[2])
return 1
";

/// The Lua that appends one delayed member (`name\njson`, or a bare json
/// of an older version) to the stream as an entry, the one place that
/// format is read: shared by [`MOVE_DUE`] and [`RUN_DELAYED`].
macro_rules! append_delayed_lua {
    () => {
        r"
local function append(stream, member)
  local cut = string.find(member, '\n', 1, true)
  if cut then
    return redis.call('XADD', stream, '*', 'v', '1', 'name', string.sub(member, 1, cut - 1),
                      'event', string.sub(member, cut + 1))
  end
  return redis.call('XADD', stream, '*', 'v', '1', 'event', member)
end
"
    };
}

/// Moves due delayed events into the stream, oldest first, each `XADD`
/// and `ZREM` together. Returns how many moved.
///
/// KEYS: delayed, stream. ARGV: limit.
const MOVE_DUE: &str = concat!(
    append_delayed_lua!(),
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  append(KEYS[2], member)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"
);

/// Moves one delayed event into the stream now, whatever its due time:
/// `ZREM` and `XADD` together, so a consumer moving it at the same time
/// cannot append it twice. Returns the new entry id, or false if the
/// member is no longer waiting.
///
/// KEYS: delayed, stream. ARGV: member.
const RUN_DELAYED: &str = concat!(
    append_delayed_lua!(),
    r"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return false end
return append(KEYS[2], ARGV[1])
"
);

/// Trims the stream towards `max_len` entries with `XTRIM MINID`, never
/// past an entry that any group has pending or has not read yet. Returns
/// how many entries were deleted.
///
/// Finding the id `max_len` entries from the end would mean reading them
/// all (`XRANGE`), which costs Redis more than adding them did. Instead each
/// call records a mark in the sorted set `{stream}:marks`: the newest id,
/// scored by the stream's `entries-added` counter (its position). The cut
/// is the newest mark at least `max_len` entries from the end, so the
/// stream keeps between `max_len` entries and that plus what was added
/// between two calls. Then the cut moves back to the oldest entry any
/// group still has pending (`XPENDING`) or to its last-delivered id,
/// whichever is older, checked in the same atomic step as the trim.
///
/// KEYS: stream, marks. ARGV: max_len.
const TRIM: &str = r"
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), string.sub(id, dash + 1)
end
local function less(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
local function fields(list)
  local map = {}
  for i = 1, #list, 2 do map[list[i]] = list[i + 1] end
  return map
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  return 0
end
local stream = fields(redis.call('XINFO', 'STREAM', KEYS[1]))
local added = tonumber(stream['entries-added'])
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #newest == 2 and tonumber(newest[2]) > added then
  -- The stream was deleted and created again: its marks are meaningless.
  redis.call('DEL', KEYS[2])
end
redis.call('ZADD', KEYS[2], string.format('%.0f', added), stream['last-generated-id'])
local max_len = tonumber(ARGV[1])
if tonumber(stream['length']) <= max_len then return 0 end
local mark = redis.call('ZREVRANGEBYSCORE', KEYS[2], string.format('%.0f', added - max_len + 1),
                        '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #mark == 0 then return 0 end
-- Older marks will never be needed again.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. mark[2])
local cut = mark[1]
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = fields(group)
  if less(info['last-delivered-id'], cut) then cut = info['last-delivered-id'] end
  if tonumber(info['pending']) > 0 then
    local oldest = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if less(oldest, cut) then cut = oldest end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', cut)
";

/// The scripts, hashed once.
pub(crate) struct Scripts {
    pub(crate) dead_letter: Script,
    pub(crate) requeue: Script,
    pub(crate) purge: Script,
    pub(crate) schedule: Script,
    pub(crate) move_due: Script,
    pub(crate) run_delayed: Script,
    pub(crate) trim: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            dead_letter: Script::new(DEAD_LETTER),
            requeue: Script::new(REQUEUE),
            purge: Script::new(PURGE),
            schedule: Script::new(SCHEDULE),
            move_due: Script::new(MOVE_DUE),
            run_delayed: Script::new(RUN_DELAYED),
            trim: Script::new(TRIM),
        }
    }
}

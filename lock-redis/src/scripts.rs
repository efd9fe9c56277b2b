//! The Lua scripts, one per operation, and what their replies mean.
//!
//! Each runs atomically on the server (EVALSHA; reloaded when the server answers NOSCRIPT).
//! The lease key holds `"<token> <owner>"` and expires by the server's clock (`PX`); the
//! token key holds the last token handed out and never expires. Tokens are strings in the
//! replies: Lua numbers are doubles, and the scripts format them with `%.0f` so that no
//! exponent ever appears.

use std::sync::LazyLock;

use redis::Script;

/// Shared by every script: reads the lease key.
///
/// `read_lease(key)` returns `nil` when there is no live lease, `{token=…, owner=…}` for one,
/// or `nil, why` for content this library does not write.
const PRELUDE: &str = r#"
local function read_lease(key)
  local v = redis.pcall('GET', key)
  if not v then return nil end
  if type(v) == 'table' then
    return nil, 'holds a Redis ' .. redis.call('TYPE', key).ok .. ', not a lease string'
  end
  local token, owner = string.match(v, '^([1-9]%d*) (%S+)$')
  if not token or #token > 20 then
    return nil, 'holds ' .. #v .. ' bytes that are not "<token> <owner>"'
  end
  return {token = token, owner = owner}
end

-- A token counter: digits, small enough that a double adds 1 to it exactly.
local function is_counter(v)
  return type(v) == 'string' and string.match(v, '^%d+$') ~= nil and #v <= 16
    and tonumber(v) < 9007199254740991
end

-- Grants the open lease at `key` to `owner` with a new token: above the last one and at
-- least the server clock in microseconds. Replies as the acquire script does.
local function grant(key, token_key, owner, ttl)
  local last = redis.pcall('GET', token_key)
  local floor = 0
  if last then
    if not is_counter(last) then
      return {-1, token_key, 'the token key holds something other than a token below 2^53'}
    end
    floor = tonumber(last) + 1
  end
  local now = redis.call('TIME')
  local token = tonumber(now[1]) * 1000000 + tonumber(now[2])
  if floor > token then token = floor end
  token = string.format('%.0f', token)
  redis.call('SET', token_key, token)
  redis.call('SET', key, token .. ' ' .. owner, 'PX', ttl)
  return {1, token}
end
"#;

/// KEYS: lease, token. ARGV: owner, ttl ms.
/// Replies `{1, token}` (acquired), `{0, token, owner, pttl}` (held), `{-1, key, why}` (corrupt).
const ACQUIRE_LUA: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if lease then
  if lease.owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, lease.token}
  end
  return {0, lease.token, lease.owner, redis.call('PTTL', KEYS[1])}
end
return grant(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
"#;

/// KEYS: lease, token, line, kept. ARGV: owner, ttl ms, patience ms.
/// Replies as [`ACQUIRE_LUA`], and `{2, ms}` (behind: open, but a place ahead in line, the
/// first one kept for `ms` more).
///
/// The line is a sorted set of owners by the server time (µs) they joined at; `kept` a hash of
/// each owner's "kept until" (server ms). Places whose time ran out are dropped from the front
/// when a call looks at it; both keys expire by themselves once no place is kept.
const IN_LINE_LUA: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
local patience = tonumber(ARGV[3])
local line_type = redis.call('TYPE', KEYS[3]).ok
if line_type ~= 'zset' and line_type ~= 'none' then
  return {-1, KEYS[3], 'the line key holds a Redis ' .. line_type .. ', not a sorted set'}
end
local kept_type = redis.call('TYPE', KEYS[4]).ok
if kept_type ~= 'hash' and kept_type ~= 'none' then
  return {-1, KEYS[4], 'the kept key holds a Redis ' .. kept_type .. ', not a hash'}
end
-- A place that lapsed is gone: its owner joins at the back again.
local mine = tonumber(redis.call('HGET', KEYS[4], ARGV[1]))
if mine and mine <= now then redis.call('ZREM', KEYS[3], ARGV[1]) end
redis.call('ZADD', KEYS[3], 'NX', string.format('%.0f', now_us), ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], string.format('%.0f', now + patience))
for _, key in ipairs({KEYS[3], KEYS[4]}) do
  if redis.call('PTTL', key) < patience then redis.call('PEXPIRE', key, patience) end
end
local function leave()
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
if lease then
  if lease.owner == ARGV[1] then
    leave()
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, lease.token}
  end
  return {0, lease.token, lease.owner, redis.call('PTTL', KEYS[1])}
end
while true do
  local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if first == ARGV[1] then break end
  local until_ms = tonumber(redis.call('HGET', KEYS[4], first))
  if until_ms and until_ms > now then return {2, until_ms - now} end
  redis.call('ZREM', KEYS[3], first)
  redis.call('HDEL', KEYS[4], first)
end
local granted = grant(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if granted[1] == 1 then leave() end
return granted
"#;

/// KEYS: line, kept. ARGV: owner, channel.
/// Replies `{1}` (left), `{0}` (had no place).
///
/// Publishes when a place went, so that the waiters behind it look again at once.
const LEAVE_LINE_LUA: &str = r#"
local line_type = redis.call('TYPE', KEYS[1]).ok
if line_type == 'none' then return {0} end
if line_type ~= 'zset' then
  return {-1, KEYS[1], 'the line key holds a Redis ' .. line_type .. ', not a sorted set'}
end
redis.pcall('HDEL', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.pcall('PUBLISH', ARGV[2], 'left')
  return {1}
end
return {0}
"#;

/// KEYS: lease. ARGV: owner, ttl ms.
/// Replies `{1, token}` (renewed), `{0}` (lost), `{-1, key, why}` (corrupt).
const RENEW_LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if lease and lease.owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, lease.token}
end
return {0}
"#;

/// KEYS: lease. ARGV: owner, channel.
/// Replies `{1}` (released), `{2}` (not owner), `{0}` (not locked), `{-1, key, why}` (corrupt).
///
/// PUBLISH goes through `pcall`: a server whose access rules forbid the channel still
/// releases (its waiters poll), rather than failing after the lease is gone.
const RELEASE_LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if not lease then return {0} end
if lease.owner ~= ARGV[1] then return {2} end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], lease.token)
return {1}
"#;

/// KEYS: lease, token, line, kept. ARGV: channel.
/// Replies `{1}` (released or repaired), `{0}` (not locked).
///
/// Deletes whatever stands at the lease key, garbage included. A token key that does not
/// hold a token is deleted too: the next acquisition then starts from the server clock,
/// as after a restart without persistence. So are line and kept keys of another type (the
/// waiters rejoin the line when they next ask).
const FORCE_RELEASE_LUA: &str = r#"
local released = redis.call('DEL', KEYS[1]) == 1
local last = redis.pcall('GET', KEYS[2])
if last and not is_counter(last) then
  redis.call('DEL', KEYS[2])
  released = true
end
for key, want in pairs({[KEYS[3]] = 'zset', [KEYS[4]] = 'hash'}) do
  local t = redis.call('TYPE', key).ok
  if t ~= want and t ~= 'none' then
    redis.call('DEL', key)
    released = true
  end
end
if released then
  redis.pcall('PUBLISH', ARGV[1], 'force')
  return {1}
end
return {0}
"#;

/// KEYS: lease.
/// Replies `{1, token, owner, pttl}` (locked), `{0}` (open), `{-1, key, why}` (corrupt).
const INSPECT_LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if not lease then return {0} end
return {1, lease.token, lease.owner, redis.call('PTTL', KEYS[1])}
"#;

fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

/// try acquire in line.
pub(crate) static IN_LINE: LazyLock<Script> = LazyLock::new(|| with_prelude(IN_LINE_LUA));
/// leave the line.
pub(crate) static LEAVE_LINE: LazyLock<Script> = LazyLock::new(|| with_prelude(LEAVE_LINE_LUA));
/// try acquire.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| with_prelude(ACQUIRE_LUA));
/// renew.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| with_prelude(RENEW_LUA));
/// release.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| with_prelude(RELEASE_LUA));
/// force release.
pub(crate) static FORCE_RELEASE: LazyLock<Script> =
    LazyLock::new(|| with_prelude(FORCE_RELEASE_LUA));
/// inspect.
pub(crate) static INSPECT: LazyLock<Script> = LazyLock::new(|| with_prelude(INSPECT_LUA));

//! The five Lua scripts, one per operation, and what their replies mean.
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
local last = redis.pcall('GET', KEYS[2])
local floor = 0
if last then
  if not is_counter(last) then
    return {-1, KEYS[2], 'the token key holds something other than a token below 2^53'}
  end
  floor = tonumber(last) + 1
end
local now = redis.call('TIME')
local token = tonumber(now[1]) * 1000000 + tonumber(now[2])
if floor > token then token = floor end
token = string.format('%.0f', token)
redis.call('SET', KEYS[2], token)
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {1, token}
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

/// KEYS: lease, token. ARGV: channel.
/// Replies `{1}` (released or repaired), `{0}` (not locked).
///
/// Deletes whatever stands at the lease key, garbage included. A token key that does not
/// hold a token is deleted too: the next acquisition then starts from the server clock,
/// as after a restart without persistence.
const FORCE_RELEASE_LUA: &str = r#"
local released = redis.call('DEL', KEYS[1]) == 1
local last = redis.pcall('GET', KEYS[2])
if last and not is_counter(last) then
  redis.call('DEL', KEYS[2])
  released = true
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

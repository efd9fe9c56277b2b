//! What every operation's Lua script shares: the prelude that reads a lease and grants one.
//!
//! Each runs atomically on the server (EVALSHA; reloaded when the server answers NOSCRIPT).
//! The lease key holds `"<token> <owner>"` and expires by the server's clock (`PX`); the
//! token key holds the last token handed out and never expires. Tokens are strings in the
//! replies: Lua numbers are doubles, and the scripts format them with `%.0f` so that no
//! exponent ever appears.

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

/// `body` with the prelude in front: one script.
pub(crate) fn with_prelude(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

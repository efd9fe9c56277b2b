//! What every operation's Lua script shares: the prelude that reads a lease and grants one.
//!
//! Each runs atomically on the server (EVALSHA; reloaded when the server answers NOSCRIPT).
//! An exclusive lease lives at the lease key: `"<token> <owner>"`, expiring by the server's
//! clock (`PX`). Shared and permit leases (never beside an exclusive one) live in two keys:
//! `holders`, a sorted set of owners by the server time (ms) their lease ends, and `permits`,
//! a hash of owner to token with the field `""` holding the name's capacity; both keys expire
//! by themselves once their last lease has. The token key holds the last token handed out
//! over every kind and never expires.
//!
//! A holder in a reply is four fields: token, owner, milliseconds left, and its kind: `x` for
//! an exclusive lease, else the name's capacity (the reader-writer capacity for a shared
//! lease, N for a permit). A reply `{3, kind}` is a claim that does not match the kind in
//! force. Tokens are strings in the
//! replies: Lua numbers are doubles, and the scripts format them with `%.0f` so that no
//! exponent ever appears.

use redis::Script;

/// Shared by every script: reads the lease key.
///
/// `read_lease(key)` returns `nil` when there is no live lease, `{token=…, owner=…}` for one,
/// or `nil, why` for content this library does not write.
const PRELUDE: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
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

-- The next token: above the last one and at least the server clock in microseconds; it is
-- stored as the last. `nil, why` for a token key this library does not write.
local function next_token(token_key)
  local last = redis.pcall('GET', token_key)
  local floor = 0
  if last then
    if not is_counter(last) then
      return nil, 'the token key holds something other than a token below 2^53'
    end
    floor = tonumber(last) + 1
  end
  local now = redis.call('TIME')
  local token = tonumber(now[1]) * 1000000 + tonumber(now[2])
  if floor > token then token = floor end
  token = string.format('%.0f', token)
  redis.call('SET', token_key, token)
  return token
end

-- Grants the open lease at `key` to `owner` with a new token. Replies as the acquire script
-- does.
local function grant(key, token_key, owner, ttl)
  local token, why = next_token(token_key)
  if not token then return {-1, token_key, why} end
  redis.call('SET', key, token .. ' ' .. owner, 'PX', ttl)
  return {1, token}
end

local SHARED = SHARED_CAPACITY

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The end of a lease of `ttl` ms granted now, in ms rounded up: never before now + ttl (a
-- lease is live while its end is above `now_ms()`, which rounds down).
local function end_ms(ttl)
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000) + ttl
end

-- Keeps the shared and permit keys for at least `ttl` ms more (the longest lease's end).
local function keep_permits(zkey, hkey, ttl)
  for _, key in ipairs({zkey, hkey}) do
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end

-- The live shared and permit leases, lapsed ones dropped: their count and the name's
-- capacity (0 and nil for none), or `nil, key, why` for keys this library does not write.
local function read_permits(zkey, hkey)
  local zt = redis.call('TYPE', zkey).ok
  if zt == 'none' then return 0 end
  if zt ~= 'zset' then
    return nil, zkey, 'the holders key holds a Redis ' .. zt .. ', not a sorted set'
  end
  local ht = redis.call('TYPE', hkey).ok
  if ht ~= 'hash' then
    return nil, hkey, 'the permits key holds a Redis ' .. ht .. ', not a hash'
  end
  local now = now_ms()
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
  for _, owner in ipairs(gone) do redis.call('HDEL', hkey, owner) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now) end
  local n = redis.call('ZCARD', zkey)
  if n == 0 then
    redis.call('DEL', zkey, hkey)
    return 0
  end
  local cap = tonumber(redis.call('HGET', hkey, ''))
  if not cap or cap < 1 then return nil, hkey, 'the permits key holds no capacity' end
  return n, cap
end

-- The reply naming the shared or permit lease that ends first, for a claim with no room.
local function permits_held(zkey, hkey, cap)
  local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  local left = math.max(0, tonumber(first[2]) - now_ms())
  return {0, redis.call('HGET', hkey, first[1]), first[1], left, tostring(cap)}
end

-- Whom a PUBLISH that frees room wakes: a newline and the owners at the front of the line
-- (`line`, `kept`) that the name can now serve, each after a newline, counted as
-- `lock_core::raw::servable` does, with `used` of capacity `cap` taken by the live leases
-- (`cap` is also taken for the shared or permit places when nothing is held: a place records
-- its weight, not its capacity, so the freed lease's capacity stands in; too large a guess
-- only wakes more). An exclusive place is served alone, and only when nothing is held. Only
-- newline: no turn wakes (the places ahead do not fit yet). `nil` when no live place stands
-- in line (no turn to wake: the caller says whether to wake everyone). `fallback` (every
-- waiter wakes) when more than 32 would be named, or the line's keys hold something this
-- library does not write (the release goes on; the waiters are told of those keys when they
-- next ask).
local function turns(line, kept, used, cap, fallback)
  local line_type = redis.call('TYPE', line).ok
  if line_type == 'none' then return nil end
  if line_type ~= 'zset' then return fallback end
  local kept_type = redis.call('TYPE', kept).ok
  if kept_type ~= 'hash' and kept_type ~= 'none' then return fallback end
  local now = now_ms()
  local names, seen, start = {}, false, 0
  while true do
    local chunk = redis.call('ZRANGE', line, start, start + 15)
    if #chunk == 0 then break end
    for _, owner in ipairs(chunk) do
      local v = redis.call('HGET', kept, owner)
      local until_ms, one = nil, nil
      if v then until_ms, one = string.match(v, '^(%d+)( ?1?)$') end
      if until_ms and tonumber(until_ms) > now then
        seen = true
        if one == ' 1' then
          used = used + 1
          if used > cap then return '\n' .. table.concat(names, '\n') end
        else
          if used == 0 and #names == 0 then return '\n' .. owner end
          return '\n' .. table.concat(names, '\n')
        end
        names[#names + 1] = owner
        if #names > 32 then return fallback end
      end
    end
    start = start + #chunk
  end
  if not seen then return nil end
  return '\n' .. table.concat(names, '\n')
end

-- Moves `owner`'s shared or permit lease's end to now + `ttl`; replies as a grant of its token.
local function extend_permit(zkey, hkey, owner, ttl)
  redis.call('ZADD', zkey, 'XX', string.format('%.0f', end_ms(ttl)), owner)
  keep_permits(zkey, hkey, ttl)
  return {1, redis.call('HGET', hkey, owner)}
end

-- Grants `owner` a shared or permit lease on a name of capacity `cap`, with a new token.
local function grant_permit(token_key, zkey, hkey, owner, ttl, cap)
  local token, why = next_token(token_key)
  if not token then return {-1, token_key, why} end
  redis.call('ZADD', zkey, string.format('%.0f', end_ms(ttl)), owner)
  redis.call('HSET', hkey, owner, token)
  redis.call('HSET', hkey, '', string.format('%d', cap))
  keep_permits(zkey, hkey, ttl)
  return {1, token}
end
"#;

/// `body` with the prelude in front: one script.
pub(crate) fn with_prelude(body: &str) -> Script {
    let prelude = PRELUDE.replace("SHARED_CAPACITY", &lock_core::SHARED_CAPACITY.to_string());
    Script::new(&format!("{prelude}{body}"))
}

/// A claim's arguments to a script: the name's capacity, and `1` for an exclusive claim.
pub(crate) fn kind_args(kind: lock_core::Kind) -> (String, &'static str) {
    let exclusive = if kind.normalized() == lock_core::Kind::Exclusive {
        "1"
    } else {
        "0"
    };
    (kind.capacity().to_string(), exclusive)
}

//! Try acquire in line: as a plain try, for a waiter that keeps its place in the name's line.

use std::sync::LazyLock;
use std::time::Duration;

use lock_core::raw::InLineOutcome;
use lock_core::{Claim, Error, Operation};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::{kind_args, with_prelude};

/// KEYS: lease, token, line, kept, holders, permits. ARGV: owner, ttl ms, patience ms,
/// capacity, exclusive (`1`/`0`).
/// Replies as the try acquire script, and `{2, ms}` (behind: room for the claim, but not also
/// for the places ahead in line, the first one kept for `ms` more).
///
/// The line is a sorted set of owners by the server time (µs) they joined at; `kept` a hash of
/// each owner's "kept until" (server ms), followed by ` 1` for a place that takes 1 of the
/// capacity (a shared or permit claim; an exclusive one takes all of it). Places whose time
/// ran out are dropped when a call walks past them; both keys expire by themselves once no
/// place is kept. A claim that does not match the kind in force takes no place.
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
local owner, ttl, patience = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, excl = tonumber(ARGV[4]), ARGV[5] == '1'
local line_type = redis.call('TYPE', KEYS[3]).ok
if line_type ~= 'zset' and line_type ~= 'none' then
  return {-1, KEYS[3], 'the line key holds a Redis ' .. line_type .. ', not a sorted set'}
end
local kept_type = redis.call('TYPE', KEYS[4]).ok
if kept_type ~= 'hash' and kept_type ~= 'none' then
  return {-1, KEYS[4], 'the kept key holds a Redis ' .. kept_type .. ', not a hash'}
end
local n, held, bad = read_permits(KEYS[5], KEYS[6])
if not n then return {-1, held, bad} end
local function leave()
  redis.call('ZREM', KEYS[3], owner)
  redis.call('HDEL', KEYS[4], owner)
end
-- The owner's own lease, and claims that do not match: decided before any place is taken.
if lease then
  if lease.owner == owner then
    if not excl then return {3, 'x'} end
    leave()
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, lease.token}
  end
  if not excl and cap ~= SHARED then return {3, 'x'} end
elseif n > 0 then
  if redis.call('ZSCORE', KEYS[5], owner) then
    if excl or held ~= cap then return {3, tostring(held)} end
    leave()
    return extend_permit(KEYS[5], KEYS[6], owner, ttl)
  end
  if held ~= cap then return {3, tostring(held)} end
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
-- A place that lapsed is gone: its owner joins at the back again.
local mine = redis.call('HGET', KEYS[4], owner)
if mine and tonumber(string.match(mine, '^%d+')) <= now then redis.call('ZREM', KEYS[3], owner) end
redis.call('ZADD', KEYS[3], 'NX', string.format('%.0f', now_us), owner)
local place = string.format('%.0f', now + patience)
if not excl then place = place .. ' 1' end
redis.call('HSET', KEYS[4], owner, place)
for _, key in ipairs({KEYS[3], KEYS[4]}) do
  if redis.call('PTTL', key) < patience then redis.call('PEXPIRE', key, patience) end
end
if lease then
  return {0, lease.token, lease.owner, redis.call('PTTL', KEYS[1]), 'x'}
end
local weight = 1
if excl then weight = cap end
if n + weight > cap then return permits_held(KEYS[5], KEYS[6], held) end
-- The places ahead, lapsed ones dropped, until they leave no room: read 16 at a time, so
-- that an exclusive claim behind a live place reads no further than that place.
local ahead, first_until, start, done = 0, nil, 0, false
while not done do
  local chunk = redis.call('ZRANGE', KEYS[3], start, start + 15)
  if #chunk == 0 then break end
  local removed = 0
  for _, other in ipairs(chunk) do
    if other == owner then
      done = true
      break
    end
    local v = redis.call('HGET', KEYS[4], other)
    local until_ms, one = nil, nil
    if v then until_ms, one = string.match(v, '^(%d+)( ?1?)$') end
    if until_ms and tonumber(until_ms) > now then
      first_until = first_until or tonumber(until_ms)
      if one == ' 1' then ahead = ahead + 1 else ahead = ahead + SHARED end
      if n + ahead + weight > cap then return {2, first_until - now} end
    else
      redis.call('ZREM', KEYS[3], other)
      redis.call('HDEL', KEYS[4], other)
      removed = removed + 1
    end
  end
  start = start + #chunk - removed
end
local granted
if excl then
  granted = grant(KEYS[1], KEYS[2], owner, ARGV[2])
else
  granted = grant_permit(KEYS[2], KEYS[5], KEYS[6], owner, ttl, cap)
end
if granted[1] == 1 then leave() end
return granted
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn try_acquire_in_line(
    lock: &RedisLock,
    claim: Claim<'_>,
    patience: Duration,
) -> Result<InLineOutcome, Error> {
    let keys = lock.keys(claim.name);
    let ms = claim.ttl.as_millis().to_string();
    let patience = lock_core::raw::patience_millis(patience).to_string();
    let (cap, exclusive) = kind_args(claim.kind);
    let call = invocation(
        &SCRIPT,
        &keys.all(),
        &[claim.owner.as_str(), &ms, &patience, &cap, exclusive],
    );
    lock.run(
        Operation::TryAcquireInLine,
        claim.name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(InLineOutcome::Acquired(claim.lease(answer.token(1)?))),
            0 => Ok(InLineOutcome::Held(answer.holder(1)?)),
            2 => Ok(InLineOutcome::Behind {
                first_kept_for: answer.millis(1)?,
            }),
            3 => Err(answer.mismatch(1, claim)?),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

//! Try acquire in line: as a plain try, for a waiter that keeps its place in the name's line.

use lock_core::Operation;
use std::sync::LazyLock;

use std::time::Duration;

use lock_core::raw::InLineOutcome;
use lock_core::{Error, LockName, OwnerId, Ttl};
use redis::Script;

use super::{invocation, lease};
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease, token, line, kept. ARGV: owner, ttl ms, patience ms.
/// Replies as the try acquire script, and `{2, ms}` (behind: open, but a place ahead in line, the
/// first one kept for `ms` more).
///
/// The line is a sorted set of owners by the server time (µs) they joined at; `kept` a hash of
/// each owner's "kept until" (server ms). Places whose time ran out are dropped from the front
/// when a call looks at it; both keys expire by themselves once no place is kept.
const LUA: &str = r#"
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

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn try_acquire_in_line(
    lock: &RedisLock,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
    patience: Duration,
) -> Result<InLineOutcome, Error> {
    let keys = lock.keys(name);
    let ms = ttl.as_millis().to_string();
    let patience = lock_core::raw::patience_millis(patience).to_string();
    let call = invocation(
        &SCRIPT,
        &[&keys.lease, &keys.token, &keys.line, &keys.kept],
        &[owner.as_str(), &ms, &patience],
    );
    lock.run(
        Operation::TryAcquireInLine,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(InLineOutcome::Acquired(lease(
                name,
                owner,
                answer.token(1)?,
                ttl,
            ))),
            0 => Ok(InLineOutcome::Held(answer.holder(1)?)),
            2 => Ok(InLineOutcome::Behind {
                first_kept_for: answer.millis(1)?,
            }),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

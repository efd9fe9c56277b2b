//! Inspect: who holds the name, if anyone.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, LockName, LockState};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease, holders, permits.
/// Replies `{1, holder…}` (locked: four fields per holder), `{0}` (open), `{-1, key, why}`
/// (corrupt).
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if lease then
  return {1, lease.token, lease.owner, redis.call('PTTL', KEYS[1]), 'x'}
end
local n, held, bad = read_permits(KEYS[2], KEYS[3])
if not n then return {-1, held, bad} end
if n == 0 then return {0} end
local now = now_ms()
local reply = {1}
local rows = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #rows, 2 do
  table.insert(reply, redis.call('HGET', KEYS[3], rows[i]))
  table.insert(reply, rows[i])
  table.insert(reply, math.max(0, tonumber(rows[i + 1]) - now))
  table.insert(reply, tostring(held))
end
return reply
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn inspect(lock: &RedisLock, name: &LockName) -> Result<LockState, Error> {
    let keys = lock.keys(name);
    let call = invocation(&SCRIPT, &[&keys.lease, &keys.holders, &keys.permits], &[]);
    lock.run(
        Operation::Inspect,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(LockState::Locked(answer.holders(1)?)),
            0 => Ok(LockState::Open),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

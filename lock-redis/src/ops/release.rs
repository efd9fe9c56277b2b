//! Release: the owner's live lease only; the waiters are told.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, LockName, OwnerId, ReleaseOutcome};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease, holders, permits, line, kept. ARGV: owner, channel.
/// Replies `{1}` (released), `{2}` (not owner), `{0}` (not locked), `{-1, key, why}` (corrupt).
///
/// Publishes whom the freed room serves (`turns` in the prelude): only those waiters' turns
/// wake, and every plain watcher. PUBLISH goes through `pcall`: a server whose access rules
/// forbid the channel still releases (its waiters poll), rather than failing after the lease
/// is gone.
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if lease then
  if lease.owner ~= ARGV[1] then return {2} end
  redis.call('DEL', KEYS[1])
  redis.pcall('PUBLISH', ARGV[2], turns(KEYS[4], KEYS[5], 0, SHARED, lease.token) or lease.token)
  return {1}
end
local n, held, bad = read_permits(KEYS[2], KEYS[3])
if not n then return {-1, held, bad} end
if n == 0 then return {0} end
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return {2} end
local token = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if n == 1 then redis.call('DEL', KEYS[2], KEYS[3]) end
local plain = token or 'released'
redis.pcall('PUBLISH', ARGV[2], turns(KEYS[4], KEYS[5], n - 1, held, plain) or plain)
return {1}
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn release(
    lock: &RedisLock,
    name: &LockName,
    owner: &OwnerId,
) -> Result<ReleaseOutcome, Error> {
    let keys = lock.keys(name);
    let call = invocation(
        &SCRIPT,
        &[
            &keys.lease,
            &keys.holders,
            &keys.permits,
            &keys.line,
            &keys.kept,
        ],
        &[owner.as_str(), &keys.channel],
    );
    lock.run(
        Operation::Release,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(ReleaseOutcome::Released),
            2 => Ok(ReleaseOutcome::NotOwner),
            0 => Ok(ReleaseOutcome::NotLocked),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

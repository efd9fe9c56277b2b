//! Try acquire: grants an open name with a new token, the holder's own with the same one.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{AcquireOutcome, Error, LockName, OwnerId, Ttl};
use redis::Script;

use super::{invocation, lease};
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease, token. ARGV: owner, ttl ms.
/// Replies `{1, token}` (acquired), `{0, token, owner, pttl}` (held), `{-1, key, why}` (corrupt).
const LUA: &str = r#"
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

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn try_acquire(
    lock: &RedisLock,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<AcquireOutcome, Error> {
    let keys = lock.keys(name);
    let ms = ttl.as_millis().to_string();
    let call = invocation(&SCRIPT, &[&keys.lease, &keys.token], &[owner.as_str(), &ms]);
    lock.run(
        Operation::TryAcquire,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(AcquireOutcome::Acquired(lease(
                name,
                owner,
                answer.token(1)?,
                ttl,
            ))),
            0 => Ok(AcquireOutcome::Held(answer.holder(1)?)),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

//! Release: the owner's live lease only; the waiters are told.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, LockName, OwnerId, ReleaseOutcome};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease. ARGV: owner, channel.
/// Replies `{1}` (released), `{2}` (not owner), `{0}` (not locked), `{-1, key, why}` (corrupt).
///
/// PUBLISH goes through `pcall`: a server whose access rules forbid the channel still
/// releases (its waiters poll), rather than failing after the lease is gone.
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if not lease then return {0} end
if lease.owner ~= ARGV[1] then return {2} end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], lease.token)
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
    let call = invocation(&SCRIPT, &[&keys.lease], &[owner.as_str(), &keys.channel]);
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

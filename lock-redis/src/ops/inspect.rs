//! Inspect: who holds the name, if anyone.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, Holders, LockName, LockState};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease.
/// Replies `{1, token, owner, pttl}` (locked), `{0}` (open), `{-1, key, why}` (corrupt).
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if not lease then return {0} end
return {1, lease.token, lease.owner, redis.call('PTTL', KEYS[1])}
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn inspect(lock: &RedisLock, name: &LockName) -> Result<LockState, Error> {
    let keys = lock.keys(name);
    let call = invocation(&SCRIPT, &[&keys.lease], &[]);
    lock.run(
        Operation::Inspect,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(LockState::Locked(Holders::one(answer.holder(1)?))),
            0 => Ok(LockState::Open),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

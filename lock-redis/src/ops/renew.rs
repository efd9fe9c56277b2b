//! Renew: the owner's live lease only.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, LockName, OwnerId, RenewOutcome, Ttl};
use redis::Script;

use super::{invocation, lease};
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease. ARGV: owner, ttl ms.
/// Replies `{1, token}` (renewed), `{0}` (lost), `{-1, key, why}` (corrupt).
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if lease and lease.owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, lease.token}
end
return {0}
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn renew(
    lock: &RedisLock,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    let keys = lock.keys(name);
    let ms = ttl.as_millis().to_string();
    let call = invocation(&SCRIPT, &[&keys.lease], &[owner.as_str(), &ms]);
    lock.run(Operation::Renew, name, &keys, call, |answer| {
        match answer.code()? {
            1 => Ok(RenewOutcome::Renewed(lease(
                name,
                owner,
                answer.token(1)?,
                ttl,
            ))),
            0 => Ok(RenewOutcome::Lost),
            code => Err(answer.unknown(code)),
        }
    })
    .await
}

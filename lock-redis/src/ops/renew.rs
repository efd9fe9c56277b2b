//! Renew: the owner's live lease only.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, Lease, LockName, OwnerId, RenewOutcome, Ttl};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease, holders, permits. ARGV: owner, ttl ms.
/// Replies `{1, token, kind}` (renewed), `{0}` (lost), `{-1, key, why}` (corrupt).
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
if lease then
  if lease.owner ~= ARGV[1] then return {0} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, lease.token, 'x'}
end
local n, held, bad = read_permits(KEYS[2], KEYS[3])
if not n then return {-1, held, bad} end
if n > 0 and redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local renewed = extend_permit(KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
  return {1, renewed[2], tostring(held)}
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
    let call = invocation(
        &SCRIPT,
        &[&keys.lease, &keys.holders, &keys.permits],
        &[owner.as_str(), &ms],
    );
    lock.run(Operation::Renew, name, &keys, call, |answer| {
        match answer.code()? {
            1 => Ok(RenewOutcome::Renewed(Lease {
                name: name.clone(),
                owner: owner.clone(),
                token: answer.token(1)?,
                ttl,
                kind: answer.kind(2)?,
            })),
            0 => Ok(RenewOutcome::Lost),
            code => Err(answer.unknown(code)),
        }
    })
    .await
}

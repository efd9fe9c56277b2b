//! Try acquire: grants room on the name with a new token, the holder's own lease with the same
//! one.

use std::sync::LazyLock;

use lock_core::{AcquireOutcome, Claim, Error, Operation};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::{kind_args, with_prelude};

/// KEYS: lease, token, holders, permits. ARGV: owner, ttl ms, capacity, exclusive (`1`/`0`).
/// Replies `{1, token}` (acquired), `{0, token, owner, pttl, kind}` (held: no room),
/// `{3, kind}` (the kind in force does not match), `{-1, key, why}` (corrupt).
const LUA: &str = r#"
local lease, why = read_lease(KEYS[1])
if why then return {-1, KEYS[1], 'the lease key ' .. why} end
local owner, ttl, cap, excl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
if lease then
  if lease.owner == owner then
    if not excl then return {3, 'x'} end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, lease.token}
  end
  if excl or cap == SHARED then
    return {0, lease.token, lease.owner, redis.call('PTTL', KEYS[1]), 'x'}
  end
  return {3, 'x'}
end
local n, held, bad = read_permits(KEYS[3], KEYS[4])
if not n then return {-1, held, bad} end
if n > 0 then
  if redis.call('ZSCORE', KEYS[3], owner) then
    if excl or held ~= cap then return {3, tostring(held)} end
    return extend_permit(KEYS[3], KEYS[4], owner, ttl)
  end
  if held ~= cap then return {3, tostring(held)} end
  if excl or n + 1 > cap then return permits_held(KEYS[3], KEYS[4], held) end
end
if excl then return grant(KEYS[1], KEYS[2], owner, ARGV[2]) end
return grant_permit(KEYS[2], KEYS[3], KEYS[4], owner, ttl, cap)
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn try_acquire(
    lock: &RedisLock,
    claim: Claim<'_>,
) -> Result<AcquireOutcome, Error> {
    let keys = lock.keys(claim.name);
    let ms = claim.ttl.as_millis().to_string();
    let (cap, exclusive) = kind_args(claim.kind);
    let call = invocation(
        &SCRIPT,
        &[&keys.lease, &keys.token, &keys.holders, &keys.permits],
        &[claim.owner.as_str(), &ms, &cap, exclusive],
    );
    lock.run(
        Operation::TryAcquire,
        claim.name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(AcquireOutcome::Acquired(claim.lease(answer.token(1)?))),
            0 => Ok(AcquireOutcome::Held(answer.holder(1)?)),
            3 => Err(answer.mismatch(1, claim)?),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

//! Force release: whoever's lease, and a repair of what this library does not write.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, LockName, ReleaseOutcome};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: lease, token, line, kept, holders, permits. ARGV: channel.
/// Replies `{1}` (released or repaired), `{0}` (not locked).
///
/// Deletes whatever stands at the lease key and the shared and permit keys (every lease on
/// the name), garbage included. A token key that does not
/// hold a token is deleted too: the next acquisition then starts from the server clock,
/// as after a restart without persistence. So are line and kept keys of another type (the
/// waiters rejoin the line when they next ask).
const LUA: &str = r#"
local released = redis.call('DEL', KEYS[1]) == 1
-- Live shared or permit leases, or keys this library does not write (`nil`): gone too.
if read_permits(KEYS[5], KEYS[6]) ~= 0 then released = true end
redis.call('DEL', KEYS[5], KEYS[6])
local last = redis.pcall('GET', KEYS[2])
if last and not is_counter(last) then
  redis.call('DEL', KEYS[2])
  released = true
end
for key, want in pairs({[KEYS[3]] = 'zset', [KEYS[4]] = 'hash'}) do
  local t = redis.call('TYPE', key).ok
  if t ~= want and t ~= 'none' then
    redis.call('DEL', key)
    released = true
  end
end
if released then
  redis.pcall('PUBLISH', ARGV[1], 'force')
  return {1}
end
return {0}
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn force_release(
    lock: &RedisLock,
    name: &LockName,
) -> Result<ReleaseOutcome, Error> {
    let keys = lock.keys(name);
    let call = invocation(&SCRIPT, &keys.all(), &[&keys.channel]);
    lock.run(
        Operation::ForceRelease,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            1 => Ok(ReleaseOutcome::Released),
            0 => Ok(ReleaseOutcome::NotLocked),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

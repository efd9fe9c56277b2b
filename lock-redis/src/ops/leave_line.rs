//! Leave the line: the owner's place goes, and the waiters behind it look again.

use lock_core::Operation;
use std::sync::LazyLock;

use lock_core::{Error, LockName, OwnerId};
use redis::Script;

use super::invocation;
use crate::RedisLock;
use crate::scripts::with_prelude;

/// KEYS: line, kept, lease, holders, permits. ARGV: owner, channel.
/// Replies `{1}` (left), `{0}` (had no place).
///
/// Publishes when a place went whom the name can now serve (`turns` in the prelude), so that
/// those waiters behind it look again at once; on a held name that serves no one, nothing.
const LUA: &str = r#"
local line_type = redis.call('TYPE', KEYS[1]).ok
if line_type == 'none' then return {0} end
if line_type ~= 'zset' then
  return {-1, KEYS[1], 'the line key holds a Redis ' .. line_type .. ', not a sorted set'}
end
redis.pcall('HDEL', KEYS[2], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local used, cap = 0, SHARED
  local lease = read_lease(KEYS[3])
  if lease then
    used = SHARED
  else
    local n, held = read_permits(KEYS[4], KEYS[5])
    if n and n > 0 then used, cap = n, held end
  end
  local payload = turns(KEYS[1], KEYS[2], used, cap, 'left')
  -- On an open name, always (nobody left in line: every waiter looks); on a held one, only
  -- when the room serves someone the place stood in front of.
  if used == 0 then
    redis.pcall('PUBLISH', ARGV[2], payload or 'left')
  elseif payload and payload ~= '\n' then
    redis.pcall('PUBLISH', ARGV[2], payload)
  end
  return {1}
end
return {0}
"#;

/// The script, loaded on first use (EVALSHA; reloaded when the server answers NOSCRIPT).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| with_prelude(LUA));

pub(crate) async fn leave_line(
    lock: &RedisLock,
    name: &LockName,
    owner: &OwnerId,
) -> Result<(), Error> {
    let keys = lock.keys(name);
    let call = invocation(
        &SCRIPT,
        &[
            &keys.line,
            &keys.kept,
            &keys.lease,
            &keys.holders,
            &keys.permits,
        ],
        &[owner.as_str(), &keys.channel],
    );
    lock.run(
        Operation::LeaveLine,
        name,
        &keys,
        call,
        |answer| match answer.code()? {
            0 | 1 => Ok(()),
            code => Err(answer.unknown(code)),
        },
    )
    .await
}

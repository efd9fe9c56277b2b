//! The Redis floors, with the same client crate on one multiplexed connection with
//! `TCP_NODELAY`, as `lock-redis` uses:
//!
//! - the raw floor, the least a correct lock can send, one round trip per operation: acquire
//!   is `SET key owner NX PX ttl`, release a compare-and-delete script (`GET` = owner →
//!   `DEL`) by EVALSHA;
//! - `lock-redis`'s own acquire and release scripts, sent bare (their text is read from
//!   `lock-redis/src/scripts.rs` and `src/ops/` at build time, so they cannot drift): what the scripts cost
//!   on the server, apart from what the library does around them.

use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{IntoConnectionInfo, Script, Value};

use crate::Res;
use crate::rounds::{BoxFuture, Side};

/// Deletes the key only if it holds the caller's owner id.
const COMPARE_AND_DELETE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// A multiplexed connection to `url` with `TCP_NODELAY`, as `lock-redis` opens.
pub async fn connect(url: &str) -> Res<MultiplexedConnection> {
    let info = url
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    Ok(redis::Client::open(info)?
        .get_multiplexed_async_connection()
        .await?)
}

/// `SET NX PX` + compare-and-delete on one key.
pub struct SetNxCycle {
    conn: MultiplexedConnection,
    key: String,
    owner: String,
    release: Script,
}

impl SetNxCycle {
    /// Cycles on `key` over a connection of its own.
    pub async fn connect(url: &str, key: &str) -> Res<Self> {
        Ok(Self {
            conn: connect(url).await?,
            key: key.to_owned(),
            owner: "0123456789abcdef0123456789abcdef".to_owned(),
            release: Script::new(COMPARE_AND_DELETE),
        })
    }
}

impl Side for SetNxCycle {
    fn label(&self) -> String {
        "floor: SET NX PX + compare-and-delete".into()
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            let set: Value = redis::cmd("SET")
                .arg(&self.key)
                .arg(&self.owner)
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .query_async(&mut self.conn)
                .await?;
            if set == Value::Nil {
                return Err("floor: SET NX found the key taken".into());
            }
            let deleted: i64 = self
                .release
                .key(&self.key)
                .arg(&self.owner)
                .invoke_async(&mut self.conn)
                .await?;
            if deleted != 1 {
                return Err("floor: compare-and-delete deleted nothing".into());
            }
            Ok(())
        })
    }
}

/// How many clients the server has connected now (`CLIENT LIST`), this one included.
pub async fn client_count(conn: &mut MultiplexedConnection) -> Res<usize> {
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await?;
    Ok(list.lines().filter(|l| !l.trim().is_empty()).count())
}

/// `lock-redis`'s script sources, read at build time: the prelude every script shares, and the
/// try-acquire and release operations' files.
const PRELUDE_RS: (&str, &str) = (
    "lock-redis/src/scripts.rs",
    include_str!("../../lock-redis/src/scripts.rs"),
);
const ACQUIRE_RS: (&str, &str) = (
    "lock-redis/src/ops/try_acquire.rs",
    include_str!("../../lock-redis/src/ops/try_acquire.rs"),
);
const RELEASE_RS: (&str, &str) = (
    "lock-redis/src/ops/release.rs",
    include_str!("../../lock-redis/src/ops/release.rs"),
);

/// The text of `const NAME: &str = r#"…"#;` in a source file (its path, its text).
fn lua_const((path, source): (&str, &'static str), name: &str) -> Res<&'static str> {
    let start = format!("const {name}: &str = r#\"");
    let from = source
        .find(&start)
        .ok_or_else(|| format!("no {name} in {path}"))?
        + start.len();
    let len = source[from..]
        .find("\"#;")
        .ok_or_else(|| format!("{name} in {path} does not end"))?;
    Ok(&source[from..from + len])
}

/// `lock-redis`'s try-acquire and release scripts, bare, on one name.
pub struct BareScriptsCycle {
    conn: MultiplexedConnection,
    acquire: Script,
    release: Script,
    lease: String,
    token: String,
    holders: String,
    permits: String,
    line: String,
    kept: String,
    channel: String,
    owner: String,
}

impl BareScriptsCycle {
    /// Cycles on one name over a connection of its own.
    pub async fn connect(url: &str) -> Res<Self> {
        let prelude = lua_const(PRELUDE_RS, "PRELUDE")?
            .replace("SHARED_CAPACITY", &lock::SHARED_CAPACITY.to_string());
        Ok(Self {
            conn: connect(url).await?,
            acquire: Script::new(&format!("{prelude}{}", lua_const(ACQUIRE_RS, "LUA")?)),
            release: Script::new(&format!("{prelude}{}", lua_const(RELEASE_RS, "LUA")?)),
            lease: "bench-bare:{bare}:lease".into(),
            token: "bench-bare:{bare}:token".into(),
            holders: "bench-bare:{bare}:holders".into(),
            permits: "bench-bare:{bare}:permits".into(),
            line: "bench-bare:{bare}:line".into(),
            kept: "bench-bare:{bare}:kept".into(),
            channel: "bench-bare:{bare}:released".into(),
            owner: "0123456789abcdef0123456789abcdef".into(),
        })
    }
}

impl Side for BareScriptsCycle {
    fn label(&self) -> String {
        "bare lock-redis scripts (EVALSHA)".into()
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            let reply: Vec<Value> = self
                .acquire
                .key(&self.lease)
                .key(&self.token)
                .key(&self.holders)
                .key(&self.permits)
                .arg(&self.owner)
                .arg(30_000)
                .arg(lock::SHARED_CAPACITY)
                .arg("1")
                .invoke_async(&mut self.conn)
                .await?;
            if reply.first() != Some(&Value::Int(1)) {
                return Err(format!("bare acquire script answered {reply:?}").into());
            }
            let reply: Vec<Value> = self
                .release
                .key(&self.lease)
                .key(&self.holders)
                .key(&self.permits)
                .key(&self.line)
                .key(&self.kept)
                .arg(&self.owner)
                .arg(&self.channel)
                .invoke_async(&mut self.conn)
                .await?;
            if reply.first() != Some(&Value::Int(1)) {
                return Err(format!("bare release script answered {reply:?}").into());
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bare scripts are found where `lock-redis` keeps them: a move there fails here.
    #[test]
    fn the_bare_scripts_are_read_from_lock_redis() {
        for (source, name, needle) in [
            (PRELUDE_RS, "PRELUDE", "local function read_lease"),
            (ACQUIRE_RS, "LUA", "grant(KEYS[1]"),
            (RELEASE_RS, "LUA", "PUBLISH"),
        ] {
            let text = lua_const(source, name).unwrap();
            assert!(text.contains(needle), "{}: {text}", source.0);
        }
    }
}

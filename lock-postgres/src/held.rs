//! The session locks a handle holds, each on a connection of its own that never goes back to
//! the pool while it holds one: one per name for a writer, one per reader for a name held
//! shared (each reader's hold lives on its own connection).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use lock_core::{Error, FencingToken, Kind, LockName, Operation, OwnerId};
use sqlx::Executor;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use tokio::time::timeout;

use crate::config::Config;
use crate::db::{self, pool_options};
use crate::errors::{self, connection_lost};
use crate::shared::Pools;

/// Settings for a connection that holds a lock: the server notices a vanished client after
/// about a minute (TCP keepalive), instead of the two hours of the kernel's default.
const HOLDER_SETTINGS: &str =
    "SET tcp_keepalives_idle = 30; SET tcp_keepalives_interval = 10; SET tcp_keepalives_count = 3";
/// And an `idle_session_timeout` set by the server's owner must not end a held lock (14+).
const HOLDER_SETTINGS_14: &str = "SET idle_session_timeout = 0";

/// The session locks of one handle.
#[derive(Debug)]
pub(crate) struct Session {
    /// Connections that take locks and hold them.
    pub(crate) pool: PgPool,
    /// Whether [`HOLDER_SETTINGS`] are sent on every connection taken (the caller's pool),
    /// rather than once as it opens (the handle's own).
    settings_per_take: bool,
    /// By name and owner: a name held shared may have several readers on one handle.
    held: Mutex<HashMap<(LockName, OwnerId), Arc<Held>>>,
}

/// A lock this handle holds, with the connection it lives on.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) owner: OwnerId,
    pub(crate) token: FencingToken,
    /// [`Kind::Exclusive`] (`pg_advisory_lock`) or [`Kind::Shared`] (`pg_advisory_lock_shared`).
    pub(crate) kind: Kind,
    /// `None` once the lock is known lost or released.
    pub(crate) conn: tokio::sync::Mutex<Option<PoolConnection<Postgres>>>,
    /// A descriptor of the connection's socket, kept once a tie was handed out
    /// ([`SessionLock::tie`](crate::SessionLock)): the copies handed out keep the socket open
    /// however this process closes its own, so ending the session must shut the socket down.
    pub(crate) tied: std::sync::Mutex<Option<OwnedFd>>,
}

impl Held {
    /// A lock of `kind` just taken on `conn`.
    pub(crate) fn new(
        owner: OwnerId,
        token: FencingToken,
        kind: Kind,
        conn: PoolConnection<Postgres>,
    ) -> Self {
        Self {
            owner,
            token,
            kind,
            conn: tokio::sync::Mutex::new(Some(conn)),
            tied: std::sync::Mutex::new(None),
        }
    }

    /// Whether a tie of this lock was handed out: its connection must never go back to the
    /// pool, where it would keep another lock alive in the processes holding the tie.
    pub(crate) fn is_tied(&self) -> bool {
        self.tied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Ends the connection `conn` (this lock's) at once: shuts its socket down first when a tie
    /// was handed out, so that the server sees it end even while copies of the tie are open.
    pub(crate) fn close(&self, conn: Option<PoolConnection<Postgres>>) {
        if let Some(socket) = self.tied.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ =
                nix::sys::socket::shutdown(socket.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        }
        close(conn);
    }
}

impl Session {
    pub(crate) fn new(config: &Config, pools: &Pools) -> Self {
        let (pool, settings_per_take) = match pools {
            Pools::Own => (
                pool_options(config, config.pool_max())
                    .after_connect(|conn, _| Box::pin(holder_settings(conn)))
                    .connect_lazy_with(config.connect_options()),
                false,
            ),
            Pools::Given(pool) => (pool.clone(), true),
        };
        Self {
            pool,
            settings_per_take,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A connection to take a lock on, with the holder's settings, within the connect timeout.
    /// A connection found dead meanwhile is replaced.
    pub(crate) async fn take(
        &self,
        config: &Config,
        doing: Operation,
    ) -> Result<ClosedUnlessKept, Error> {
        let limit = config.connect_timeout();
        let mut reconnects = self.pool.size() + 1;
        loop {
            let mut conn = ClosedUnlessKept(Some(db::acquire(&self.pool, config, doing).await?));
            if !self.settings_per_take {
                return Ok(conn);
            }
            match timeout(limit, holder_settings(&mut conn)).await {
                Ok(Ok(())) => return Ok(conn),
                Ok(Err(e)) if connection_lost(&e) && reconnects > 0 => reconnects -= 1,
                Ok(Err(e)) => return Err(errors::map(config, doing, e)),
                Err(_) => return Err(errors::statement_timed_out(config, doing, limit)),
            }
        }
    }

    /// The hold of `owner` on `name`, if this handle has one.
    pub(crate) fn get(&self, name: &LockName, owner: &OwnerId) -> Option<Arc<Held>> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.clone(), owner.clone()))
            .cloned()
    }

    pub(crate) fn insert(&self, name: &LockName, held: Held) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        // Entries this grant shows lost go (their connections close as they go): every other
        // entry of the name when a writer got in, the writer's when a reader did, and the
        // owner's own earlier one.
        let kind = held.kind;
        let lost: Vec<_> = map
            .iter()
            .filter(|((n, o), h)| {
                n == name
                    && (*o == held.owner || kind == Kind::Exclusive || h.kind == Kind::Exclusive)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut old = Vec::with_capacity(lost.len());
        for key in lost {
            old.extend(map.remove(&key));
        }
        map.insert((name.clone(), held.owner.clone()), Arc::new(held));
        drop(map);
        drop(old);
    }

    /// Forgets `held` (only if it is still the entry of its owner on `name`).
    pub(crate) fn remove(&self, name: &LockName, held: &Arc<Held>) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let key = (name.clone(), held.owner.clone());
        if map.get(&key).is_some_and(|h| Arc::ptr_eq(h, held)) {
            map.remove(&key);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The lock ends with its connection, which never goes back to the pool holding it:
        // dropping the handle releases every lock it holds.
        let conn = self.conn.get_mut().take();
        self.close(conn);
    }
}

/// Ends a connection at once, without returning it to the pool (whatever locks it holds end
/// with it as soon as the server sees the socket close).
pub(crate) fn close(conn: Option<PoolConnection<Postgres>>) {
    if let Some(conn) = conn {
        drop(conn.detach());
    }
}

/// A connection that may hold a lock: dropped before [`keep`](Self::keep) (an error, or
/// the caller's future cancelled mid-statement), it is closed rather than returned to the
/// pool, so no lock can outlive it in an idle pool connection.
pub(crate) struct ClosedUnlessKept(pub(crate) Option<PoolConnection<Postgres>>);

impl ClosedUnlessKept {
    /// The connection, known to hold nothing that must end with it (or to be kept).
    pub(crate) fn keep(mut self) -> PoolConnection<Postgres> {
        self.0.take().expect("not kept yet")
    }
}

impl std::ops::Deref for ClosedUnlessKept {
    type Target = PoolConnection<Postgres>;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("not kept yet")
    }
}

impl std::ops::DerefMut for ClosedUnlessKept {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("not kept yet")
    }
}

impl Drop for ClosedUnlessKept {
    fn drop(&mut self) {
        close(self.0.take());
    }
}

/// Sends [`HOLDER_SETTINGS`] (and [`HOLDER_SETTINGS_14`] to a server that knows it).
async fn holder_settings(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    conn.execute(HOLDER_SETTINGS).await?;
    if conn.server_version_num().is_some_and(|v| v >= 140_000) {
        conn.execute(HOLDER_SETTINGS_14).await?;
    }
    Ok(())
}

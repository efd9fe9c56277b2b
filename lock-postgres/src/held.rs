//! The session locks a handle holds, each on a connection of its own that never goes back to
//! the pool while it holds one.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use lock_core::{Error, FencingToken, LockName, Operation, OwnerId};
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
    held: Mutex<HashMap<LockName, Arc<Held>>>,
}

/// A lock this handle holds, with the connection it lives on.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) owner: OwnerId,
    pub(crate) token: FencingToken,
    /// `None` once the lock is known lost or released.
    pub(crate) conn: tokio::sync::Mutex<Option<PoolConnection<Postgres>>>,
    /// A descriptor of the connection's socket, kept once a tie was handed out
    /// ([`SessionLock::tie`](crate::SessionLock)): the copies handed out keep the socket open
    /// however this process closes its own, so ending the session must shut the socket down.
    pub(crate) tied: std::sync::Mutex<Option<OwnedFd>>,
}

impl Held {
    /// A lock just taken on `conn`.
    pub(crate) fn new(owner: OwnerId, token: FencingToken, conn: PoolConnection<Postgres>) -> Self {
        Self {
            owner,
            token,
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

    pub(crate) fn get(&self, name: &LockName) -> Option<Arc<Held>> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn insert(&self, name: &LockName, held: Held) {
        let old = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), Arc::new(held));
        // An entry replaced was lost (its lock is ours now); its connection closes as it goes.
        drop(old);
    }

    /// Forgets `held` (only if it is still the entry for `name`).
    pub(crate) fn remove(&self, name: &LockName, held: &Arc<Held>) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(name).is_some_and(|h| Arc::ptr_eq(h, held)) {
            map.remove(name);
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

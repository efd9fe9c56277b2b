#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod config;
mod db;
mod errors;
mod key;
mod lease;
mod listen;
mod schema;
mod session;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lock_core::raw::{ChangeFuture, InLineOutcome};
use lock_core::{
    AcquireOutcome, Capabilities, Error, Lock, LockName, LockState, OwnerId, ReleaseOutcome,
    RenewOutcome, Ttl,
};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::time::timeout;

pub use config::{Config, Mode};
pub use key::advisory_key;

use db::Db;
use listen::Notifier;
use session::Session;
use sql::Statements;

/// The lease mode's try-acquire and release statements for `table` and its waiters' `line`
/// table (both quoted `schema.table`), exactly as this crate sends them, and the line table's
/// definition (a release looks up the first in line to NOTIFY). Acquire binds `$1` name, `$2`
/// owner, `$3` ttl in ms; release binds `$1` name, `$2` owner, `$3` the NOTIFY channel. For
/// `lock-bench`, which times the bare SQL beside the library; not a stable interface.
#[doc(hidden)]
pub fn lease_statements(table: &str, line: &str) -> (String, String, String) {
    let s = Statements::new(table, line);
    (
        sql::create_line_table(line),
        s.acquire.text().to_owned(),
        s.release.text().to_owned(),
    )
}

/// How often a session-mode waiter looks again without a NOTIFY: a holder whose connection
/// died (crash, network, `pg_terminate_backend`) sends none.
const SESSION_RECHECK: Duration = Duration::from_millis(250);

/// Locks in a Postgres table (lease mode) or as session advisory locks (session mode).
///
/// One handle owns a small connection pool, one LISTEN connection (opened by the first
/// waiter) and, in session mode, one connection per held lock. Cheap to clone: clones share
/// all of it. See the crate documentation for the table, the keys and the guarantees.
#[derive(Clone)]
pub struct PostgresLock {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) db: Db,
    pub(crate) sql: Statements,
    pub(crate) channel: String,
    notifier: Notifier,
    session: Option<Session>,
}

impl PostgresLock {
    /// Connects to the Postgres at `url` (see [`Config::from_url`]), creating the table (and
    /// its schema) when missing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that cannot be used; [`Error::Unreachable`] when no
    /// Postgres answers within `connect_timeout` (nothing listening, not Postgres, no answer);
    /// [`Error::Backend`] when it refuses (wrong password, no such database, no right to create
    /// the table) or a table of that name is not a lock table. No message holds the password.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(Config::from_url(url)?).await
    }

    /// [`connect`](Self::connect) with a checked [`Config`].
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(config: Config) -> Result<Self, Error> {
        // One connection of its own first: its error says what is wrong, where a pool would
        // only say that it timed out.
        let limit = config.connect_timeout();
        let mut conn =
            match timeout(limit, PgConnection::connect_with(&config.connect_options())).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(errors::map_connect(&config, e)),
                Err(_) => return Err(errors::timed_out(&config, "connect", limit)),
            };
        match timeout(limit, schema::ensure(&mut conn, &config)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(db::ensure_error(&config, e)),
            Err(_) => {
                return Err(errors::statement_timed_out(
                    &config,
                    "create the lock table",
                    limit,
                ));
            }
        }
        let _ = timeout(limit, conn.close()).await;
        let channel = key::channel(config.schema(), config.table());
        let session = (config.mode() == Mode::Session).then(|| Session::new(&config));
        Ok(Self {
            inner: Arc::new(Inner {
                db: Db::new(&config, config.pool_max()),
                sql: Statements::new(&config.quoted_table(), &config.quoted_line_table()),
                notifier: Notifier::new(&config, channel.clone()),
                channel,
                session,
                config,
            }),
        })
    }

    /// The configuration this handle was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The advisory lock key of `name` in this handle's table (see [`advisory_key`]): what a
    /// session-mode lock shows in `pg_locks`.
    pub fn advisory_key(&self, name: &LockName) -> i64 {
        self.inner.advisory_key(name)
    }
}

impl Inner {
    pub(crate) fn advisory_key(&self, name: &LockName) -> i64 {
        advisory_key(self.config.schema(), self.config.table(), name.as_str())
    }

    /// The error for a row this crate did not write.
    pub(crate) fn corrupt(&self, name: &LockName, detail: String) -> Error {
        Error::Corrupt {
            name: name.to_string(),
            location: format!(
                "table {} at {}",
                self.config.qualified_table(),
                self.config.target()
            ),
            detail,
        }
    }
}

impl fmt::Debug for PostgresLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLock")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Lock for PostgresLock {
    fn capabilities(&self) -> Capabilities {
        let session = self.inner.session.is_some();
        Capabilities {
            expiry: !session,
            fencing: true,
            wake_on_release: self.inner.config.listen(),
            cross_process: true,
            owner_on_any_handle: !session,
            fair_line: !session,
            holder_tie: false,
        }
    }

    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error> {
        match &self.inner.session {
            Some(s) => session::try_acquire(&self.inner, s, name, owner, ttl).await,
            None => lease::try_acquire(&self.inner, name, owner, ttl).await,
        }
    }

    /// In session mode there is no line ([`Capabilities::fair_line`] is `false`): this is
    /// [`try_acquire`](Lock::try_acquire).
    async fn try_acquire_in_line(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        match &self.inner.session {
            Some(s) => Ok(session::try_acquire(&self.inner, s, name, owner, ttl)
                .await?
                .into()),
            None => lease::try_acquire_in_line(&self.inner, name, owner, ttl, patience).await,
        }
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        match &self.inner.session {
            Some(_) => Ok(()),
            None => lease::leave_line(&self.inner, name, owner).await,
        }
    }

    /// In session mode, `ttl` has no effect: the lock lasts while its connection does.
    /// [`RenewOutcome::Renewed`] says that connection is alive and holds the lock.
    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        match &self.inner.session {
            Some(s) => session::renew(&self.inner, s, name, owner, ttl).await,
            None => lease::renew(&self.inner, name, owner, ttl).await,
        }
    }

    /// In session mode, only the handle that took a lock can release it; any other answers
    /// [`ReleaseOutcome::NotOwner`] (use [`force_release`](Lock::force_release)).
    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        match &self.inner.session {
            Some(s) => session::release(&self.inner, s, name, owner).await,
            None => lease::release(&self.inner, name, owner).await,
        }
    }

    /// In session mode, ends the holder's server session with `pg_terminate_backend` (which
    /// needs the holder's role or `pg_signal_backend`) and returns once its lock is gone.
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        match &self.inner.session {
            Some(_) => session::force_release(&self.inner, name).await,
            None => lease::force_release(&self.inner, name).await,
        }
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        match &self.inner.session {
            Some(_) => session::inspect(&self.inner, name).await,
            None => lease::inspect(&self.inner, name).await,
        }
    }

    /// In lease mode a release NOTIFYs the owner first in line, and only that waiter's turn
    /// wakes; in session mode there is no line and this is [`watch`](Lock::watch).
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        match &self.inner.session {
            Some(_) => self.watch(name).await,
            None => self.inner.notifier.watch_turn(name, owner).await,
        }
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        let change = self.inner.notifier.watch(name).await?;
        Ok(match (change, &self.inner.session) {
            (Some(change), Some(_)) => Some(Box::pin(async move {
                tokio::select! {
                    () = change => {}
                    () = tokio::time::sleep(SESSION_RECHECK) => {}
                }
            })),
            (change, _) => change,
        })
    }
}

//! Session mode: `pg_try_advisory_lock` on a connection kept for the lock's life.
//!
//! Each held lock has a pool connection of its own, taken out of the pool while held; the lock
//! ends with `pg_advisory_unlock` or when that connection ends (closed, killed, the server
//! restarted). The table still keeps one row per name, for the fencing token and the holder's
//! owner id, written in the same statement that takes the lock.
//!
//! Every step that takes a lock, and every read of who holds one, runs under a
//! transaction-level advisory lock on the same key in the two-`int4` key space (a per-name
//! mutex, exclusive to take, shared to read), so a reader never sees a lock taken whose row is
//! not yet written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lock_core::{
    AcquireOutcome, Error, FencingToken, Holder, Lease, LockName, LockState, OwnerId,
    ReleaseOutcome, RenewOutcome, Ttl,
};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::{Connection, Executor};
use tokio::time::{Instant, timeout};

use crate::Inner;
use crate::config::Config;
use crate::db::{self, get, pool_options};
use crate::errors::{self, connection_lost};
use crate::key;
use crate::lease::{owner_of, token_of};

/// How often one call starts over when the lock changes hands under it.
const ATTEMPTS: usize = 16;
/// How long a force release waits between looks at whether the terminated holder is gone.
const GONE_POLL: Duration = Duration::from_millis(5);

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
    pool: PgPool,
    held: Mutex<HashMap<LockName, Arc<Held>>>,
}

/// A lock this handle holds, with the connection it lives on.
#[derive(Debug)]
struct Held {
    owner: OwnerId,
    token: FencingToken,
    /// `None` once the lock is known lost or released.
    conn: tokio::sync::Mutex<Option<PoolConnection<Postgres>>>,
}

impl Session {
    pub(crate) fn new(config: &Config) -> Self {
        let pool = pool_options(config, config.pool_max())
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(HOLDER_SETTINGS).await?;
                    if conn.server_version_num().is_some_and(|v| v >= 140_000) {
                        conn.execute(HOLDER_SETTINGS_14).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(config.connect_options());
        Self {
            pool,
            held: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, name: &LockName) -> Option<Arc<Held>> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn insert(&self, name: &LockName, held: Held) {
        let old = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), Arc::new(held));
        // An entry replaced was lost (its lock is ours now); its connection closes as it goes.
        drop(old);
    }

    /// Forgets `held` (only if it is still the entry for `name`).
    fn remove(&self, name: &LockName, held: &Arc<Held>) {
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
        close(self.conn.get_mut().take());
    }
}

/// Ends a connection at once, without returning it to the pool (whatever locks it holds end
/// with it as soon as the server sees the socket close).
fn close(conn: Option<PoolConnection<Postgres>>) {
    if let Some(conn) = conn {
        drop(conn.detach());
    }
}

/// A connection that may hold a lock: dropped before [`disarm`](Self::disarm) (an error, or
/// the caller's future cancelled mid-statement), it is closed rather than returned to the
/// pool, so no lock can outlive it in an idle pool connection.
struct Armed(Option<PoolConnection<Postgres>>);

impl Armed {
    /// The connection, known to hold nothing that must end with it (or to be kept).
    fn disarm(mut self) -> PoolConnection<Postgres> {
        self.0.take().expect("armed until disarmed")
    }
}

impl std::ops::Deref for Armed {
    type Target = PoolConnection<Postgres>;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("armed until disarmed")
    }
}

impl std::ops::DerefMut for Armed {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("armed until disarmed")
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        close(self.0.take());
    }
}

fn keys(inner: &Inner, name: &LockName) -> (i64, i32, i32) {
    let key = inner.advisory_key(name);
    let (hi, lo) = key::split(key);
    (key, hi, lo)
}

pub(crate) async fn try_acquire(
    inner: &Inner,
    session: &Session,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<AcquireOutcome, Error> {
    let lease = |token| {
        AcquireOutcome::Acquired(Lease {
            name: name.clone(),
            owner: owner.clone(),
            token,
            ttl,
        })
    };
    if let Some(held) = session.get(name)
        && held.owner == *owner
        && still_held(inner, session, name, &held).await?
    {
        return Ok(lease(held.token));
    }
    let (key, hi, lo) = keys(inner, name);
    let config = &inner.config;
    let limit = config.connect_timeout();
    let mut reconnects = session.pool.size() + 1;
    for _ in 0..ATTEMPTS {
        let mut conn = Armed(Some(
            db::acquire(&session.pool, config, "try acquire").await?,
        ));
        let query = inner
            .sql
            .session_acquire
            .query()
            .bind(name.as_str().to_owned())
            .bind(owner.as_str().to_owned())
            .bind(key)
            .bind(hi)
            .bind(lo);
        let row = match timeout(limit, query.fetch_one(&mut **conn)).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => {
                // The lock may have been taken before the statement failed: the connection
                // goes, and the lock with it.
                drop(conn);
                if connection_lost(&e) && reconnects > 0 {
                    reconnects -= 1;
                    continue;
                }
                return Err(errors::map(config, "try acquire", e));
            }
            Err(_) => {
                drop(conn);
                return Err(errors::statement_timed_out(config, "try acquire", limit));
            }
        };
        let ok: Option<bool> = get(&row, "ok")?;
        let token: Option<i64> = get(&row, "token")?;
        match (ok, token) {
            (Some(true), Some(token)) => {
                let token = token_of(inner, name, token)?;
                session.insert(
                    name,
                    Held {
                        owner: owner.clone(),
                        token,
                        conn: tokio::sync::Mutex::new(Some(conn.disarm())),
                    },
                );
                return Ok(lease(token));
            }
            (Some(false), _) => {
                // Nothing taken: the connection goes back to the pool.
                drop(conn.disarm());
                match holder(inner, name).await? {
                    Some(holder) => return Ok(AcquireOutcome::Held(holder)),
                    // Released in between: try again.
                    None => continue,
                }
            }
            (None, _) => {
                drop(conn);
                return Err(Error::Backend {
                    message: format!(
                        "try acquire: the server session of a pool connection already held the \
                         advisory lock of {name:?}: connections are shared behind a pooler \
                         (PgBouncer in transaction mode?), where mode=session cannot work; \
                         connect to Postgres directly"
                    ),
                    source: None,
                });
            }
            (Some(true), None) => {
                drop(conn);
                return Err(Error::Backend {
                    message: format!("try acquire: took the lock on {name:?} but wrote no token"),
                    source: None,
                });
            }
        }
    }
    Err(Error::Backend {
        message: format!(
            "try acquire: the lock {name:?} changed hands {ATTEMPTS} times during one call; try again"
        ),
        source: None,
    })
}

/// Whether `held`'s connection still holds the lock. A connection found dead or without the
/// lock is closed and forgotten; only a timeout is an error (the lock may still stand).
async fn still_held(
    inner: &Inner,
    session: &Session,
    name: &LockName,
    held: &Arc<Held>,
) -> Result<bool, Error> {
    let config = &inner.config;
    let limit = config.connect_timeout();
    let (key, _, _) = keys(inner, name);
    let mut slot = held.conn.lock().await;
    let Some(conn) = slot.as_mut() else {
        session.remove(name, held);
        return Ok(false);
    };
    let query = inner.sql.session_check.query().bind(key);
    let alive = match timeout(limit, query.fetch_one(&mut **conn)).await {
        Ok(Ok(row)) => get::<bool>(&row, "held")?,
        Ok(Err(e)) if connection_lost(&e) => false,
        Ok(Err(e)) => return Err(errors::map(config, "check a session lock", e)),
        Err(_) => return Err(errors::timed_out(config, "check a session lock", limit)),
    };
    if !alive {
        close(slot.take());
        session.remove(name, held);
    }
    Ok(alive)
}

pub(crate) async fn renew(
    inner: &Inner,
    session: &Session,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    match session.get(name) {
        Some(held) if held.owner == *owner => {
            if still_held(inner, session, name, &held).await? {
                return Ok(RenewOutcome::Renewed(Lease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token: held.token,
                    ttl,
                }));
            }
            Ok(RenewOutcome::Lost)
        }
        _ => Ok(RenewOutcome::Lost),
    }
}

pub(crate) async fn release(
    inner: &Inner,
    session: &Session,
    name: &LockName,
    owner: &OwnerId,
) -> Result<ReleaseOutcome, Error> {
    if let Some(held) = session.get(name)
        && held.owner == *owner
    {
        let config = &inner.config;
        let limit = config.connect_timeout();
        let (key, _, _) = keys(inner, name);
        let mut slot = held.conn.lock().await;
        session.remove(name, &held);
        if let Some(conn) = slot.take() {
            let mut conn = Armed(Some(conn));
            let query = inner
                .sql
                .session_release
                .query()
                .bind(key)
                .bind(inner.channel.clone())
                .bind(name.as_str().to_owned());
            match timeout(limit, query.fetch_one(&mut **conn)).await {
                Ok(Ok(row)) if get::<bool>(&row, "ok")? => {
                    // Holds nothing now: back to the pool.
                    drop(conn.disarm());
                    return Ok(ReleaseOutcome::Released);
                }
                Ok(Ok(_)) => drop(conn),
                Ok(Err(e)) if connection_lost(&e) => drop(conn),
                Ok(Err(e)) => {
                    drop(conn);
                    return Err(errors::map(config, "release", e));
                }
                Err(_) => {
                    // Closing the connection ends the lock once the server reads again.
                    drop(conn);
                    return Err(errors::statement_timed_out(config, "release", limit));
                }
            }
        }
        // The lock had been lost already.
    }
    Ok(match holder(inner, name).await? {
        Some(_) => ReleaseOutcome::NotOwner,
        None => ReleaseOutcome::NotLocked,
    })
}

/// Ends the session that holds `name` (`pg_terminate_backend`, as an operator would), waits
/// until its lock is gone, and wakes the waiters.
pub(crate) async fn force_release(inner: &Inner, name: &LockName) -> Result<ReleaseOutcome, Error> {
    let config = &inner.config;
    let limit = config.connect_timeout();
    let deadline = Instant::now() + limit;
    let mut conn = inner.db.acquire("force release").await?;
    let result = tokio::time::timeout_at(
        deadline + GONE_POLL * 4,
        terminate(inner, &mut conn, name, deadline),
    )
    .await;
    match result {
        Ok(Ok(Some(outcome))) => Ok(outcome),
        Ok(Ok(None)) => Err(Error::Backend {
            message: format!(
                "force release: the session holding {name:?} was told to end but still held the \
                 lock after {limit:?}"
            ),
            source: None,
        }),
        Ok(Err(e)) => {
            if connection_lost(&e) {
                conn.close_on_drop();
            }
            Err(errors::map(config, "force release", e))
        }
        Err(_) => {
            conn.close_on_drop();
            Err(errors::statement_timed_out(config, "force release", limit))
        }
    }
}

/// [`force_release`]'s transaction; `None` when the terminated holder still holds the lock
/// at `deadline`.
async fn terminate(
    inner: &Inner,
    conn: &mut PgConnection,
    name: &LockName,
    deadline: Instant,
) -> Result<Option<ReleaseOutcome>, sqlx::Error> {
    let (key, hi, lo) = keys(inner, name);
    let mut tx = conn.begin().await?;
    inner
        .sql
        .session_step
        .query()
        .bind(hi)
        .bind(lo)
        .fetch_one(&mut *tx)
        .await?;
    // Without the right to signal the holder, Postgres raises an error here that says so.
    let holders = inner
        .sql
        .session_terminate
        .query()
        .bind(key)
        .fetch_all(&mut *tx)
        .await?;
    if holders.is_empty() {
        tx.commit().await?;
        return Ok(Some(ReleaseOutcome::NotLocked));
    }
    loop {
        let row = inner
            .sql
            .session_held
            .query()
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        if !sqlx::Row::try_get::<bool, _>(&row, "held")? {
            break;
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(GONE_POLL).await;
    }
    inner
        .sql
        .notify
        .query()
        .bind(inner.channel.clone())
        .bind(name.as_str().to_owned())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(ReleaseOutcome::Released))
}

/// Who holds `name`, read under the shared per-name step lock.
async fn holder(inner: &Inner, name: &LockName) -> Result<Option<Holder>, Error> {
    let (key, hi, lo) = keys(inner, name);
    let step = || inner.sql.session_step_shared.query().bind(hi).bind(lo);
    let read = || {
        inner
            .sql
            .session_holder
            .query()
            .bind(name.as_str().to_owned())
            .bind(key)
    };
    let rows = inner.db.fetch_steps("inspect", &[&step, &read]).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let pid: i32 = get(row, "pid")?;
    let (owner, token): (Option<String>, Option<i64>) = (get(row, "owner")?, get(row, "token")?);
    match (owner, token) {
        (Some(owner), Some(token)) => Ok(Some(Holder {
            owner: owner_of(inner, name, owner)?,
            token: token_of(inner, name, token)?,
            expires_in: None,
        })),
        _ => Err(inner.corrupt(
            name,
            format!(
                "a session (pid {pid}) holds the advisory lock of this name, but the table names no \
                 owner: it was not taken through lock-postgres (does another program use the key?)"
            ),
        )),
    }
}

pub(crate) async fn inspect(inner: &Inner, name: &LockName) -> Result<LockState, Error> {
    Ok(match holder(inner, name).await? {
        Some(holder) => LockState::Locked(holder),
        None => LockState::Open,
    })
}

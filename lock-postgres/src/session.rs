//! [`SessionLock`]: `pg_try_advisory_lock` on a connection kept for the lock's life.
//!
//! Each held lock has a pool connection of its own, taken out of the pool while held; the lock
//! ends with `pg_advisory_unlock` or when that connection ends (closed, killed, the server
//! restarted). The table still keeps one row per name, for the fencing token and the holder's
//! owner id, written in the same statement that takes the lock.
//!
//! # Behavior
//!
//! Exclusive and shared holds ([`Capabilities::shared`]); no permits
//! ([`Capabilities::permits`] is false, so a permit claim is refused before the server is
//! asked: an advisory lock has no semaphore form; lease mode ([`LeaseLock`](crate::LeaseLock))
//! offers them).
//!
//! - A writer takes `pg_try_advisory_lock(key)`, a reader `pg_try_advisory_lock_shared(key)`,
//!   each on a connection of its own, kept out of the pool while it holds. Readers hold
//!   together; a writer is refused while any reader holds, a reader while a writer does (the
//!   answer is [`AcquireOutcome::Held`] with the holder of lowest token).
//! - Every grant, a reader's included, takes the next token of the name's row, so tokens rise
//!   per name over all grants. A writer's grant writes its owner to the row; a reader's sets
//!   the row's owner to `*` and adds `{o: owner, t: token, p: backend pid}` to its `holders`
//!   column, in the same statement as its hold. An entry counts only while its session (pid)
//!   holds the shared advisory lock of the key in `pg_locks`: a reader whose connection ended
//!   is gone from [`inspect`](Lock::inspect) at once, and its entry is dropped at the next
//!   grant of the name.
//! - The same owner asking again with the same kind gets its lease back (same token); with
//!   the other kind while it holds, [`InvalidInput::KindMismatch`](lock_core::InvalidInput),
//!   and nothing changes.
//! - [`inspect`](Lock::inspect) names the writer or every reader (`expires_in` is `None`);
//!   `renew`, `release` and `tie` act on the caller's own hold only (a reader's release leaves
//!   the others and NOTIFYs the waiters); `force_release` ends every holder's session.
//! - There is no waiters' line ([`Capabilities::fair_line`] is false).
//!
//! Every step that takes a lock, and every read of who holds one, runs under a
//! transaction-level advisory lock on the same key in the two-`int4` key space (a per-name
//! mutex, exclusive to take, shared to read), so a reader never sees a lock taken whose row is
//! not yet written.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lock_core::Operation;
use lock_core::raw::{self, ChangeFuture, InLineOutcome, during};
use lock_core::{
    AcquireOutcome, Capabilities, Claim, Error, Holder, HolderTie, Holders, Kind, Lease, Lock,
    LockName, LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::time::{Instant, timeout};

use crate::config::{Config, Mode};
use crate::db::get;
use crate::errors::{self, connection_lost};
use crate::held::{ClosedUnlessKept, Held, Session};
use crate::key;
use crate::lease::{owner_of, token_of};
use crate::shared::{Pools, Shared};

/// How often a waiter looks again without a NOTIFY: a holder whose connection died (crash,
/// network, `pg_terminate_backend`) sends none.
const RECHECK: Duration = Duration::from_millis(250);

/// Session advisory locks (`mode=session`): a lock lasts while the connection that took it
/// does, with no ttl; the table keeps each name's fencing token and holder.
///
/// One handle owns a small connection pool, one LISTEN connection (opened by the first
/// waiter) and one connection per held lock, or takes them all from the caller's pool
/// ([`with_pool`](Self::with_pool)). Cheap to clone: clones share all of it, the locks held
/// included. See the crate documentation for the keys and the guarantees.
#[derive(Clone)]
pub struct SessionLock {
    shared: Arc<Shared>,
    session: Arc<Session>,
}

impl SessionLock {
    /// Connects to the Postgres at `url` (see [`Config::from_url`]; it must say
    /// `mode=session`), creating the table (and its schema) when missing.
    ///
    /// # Errors
    /// As [`LeaseLock::connect`](crate::LeaseLock::connect), with [`Error::InvalidInput`] for
    /// a URL that does not say `mode=session`.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(Config::from_url(url)?).await
    }

    /// [`connect`](Self::connect) with a checked [`Config`].
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(config: Config) -> Result<Self, Error> {
        Self::open(config, Pools::Own).await
    }

    /// Session locks on the caller's `pool` (see the crate documentation, "Your own pool"):
    /// each held lock keeps one of its connections out of it until released.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`Error::InvalidInput`] when the pool's connections
    /// run with `synchronous_commit=off`.
    pub async fn with_pool(pool: PgPool, config: Config) -> Result<Self, Error> {
        Self::open(config, Pools::Given(pool)).await
    }

    async fn open(config: Config, pools: Pools) -> Result<Self, Error> {
        let shared = Shared::open(config, Mode::Session, pools, "SessionLock").await?;
        Ok(Self {
            session: Arc::new(Session::new(&shared.config, &shared.pools)),
            shared: Arc::new(shared),
        })
    }

    /// The configuration this handle was made with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The advisory lock key of `name` in this handle's table (see
    /// [`advisory_key`](crate::advisory_key)): what a held lock shows in `pg_locks`.
    pub fn advisory_key(&self, name: &LockName) -> i64 {
        self.shared.advisory_key(name)
    }
}

impl fmt::Debug for SessionLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLock")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Lock for SessionLock {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: false,
            fencing: true,
            wake_on_release: self.shared.config.listen(),
            cross_process: true,
            owner_on_any_handle: false,
            fair_line: false,
            holder_tie: false,
            shared: true,
            ..Capabilities::default()
        }
    }

    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        self.capabilities().check(claim.kind)?;
        try_acquire(&self.shared, &self.session, claim)
            .await
            .map_err(during(Operation::TryAcquire))
    }

    /// There is no line ([`Capabilities::fair_line`] is `false`): this is
    /// [`try_acquire`](Lock::try_acquire).
    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        _patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        let outcome = self.try_acquire(claim).await;
        Ok(outcome.map_err(during(Operation::TryAcquireInLine))?.into())
    }

    async fn leave_line(&self, _name: &LockName, _owner: &OwnerId) -> Result<(), Error> {
        Ok(())
    }

    /// `ttl` has no effect: the lock lasts while its connection does.
    /// [`RenewOutcome::Renewed`] says that connection is alive and holds the lock.
    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        renew(&self.shared, &self.session, name, owner, ttl)
            .await
            .map_err(during(Operation::Renew))
    }

    /// Only the handle that took a lock can release it; any other answers
    /// [`ReleaseOutcome::NotOwner`] (use [`force_release`](Lock::force_release)). A reader's
    /// release ends its own hold only.
    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        release(&self.shared, &self.session, name, owner)
            .await
            .map_err(during(Operation::Release))
    }

    /// Ends every holder's server session (the writer's, or every reader's) with
    /// `pg_terminate_backend` (which needs the holders' role or `pg_signal_backend`) and
    /// returns once the lock is gone.
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        force_release(&self.shared, name)
            .await
            .map_err(during(Operation::ForceRelease))
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        inspect(&self.shared, name)
            .await
            .map_err(during(Operation::Inspect))
    }

    /// A tie here is another descriptor of the socket of the connection that holds the lock:
    /// while a copy is open (in a command that `lock run` started, say), the server session,
    /// and so the lock, lives on even after this process has died; it ends when the last copy
    /// closes. Unlike a file tie, closing the copies while this handle lives ends nothing
    /// (hence no [`Capabilities::holder_tie`]), and this handle's release or loss of the lock
    /// still ends it at once. Over a Unix socket there is no tie (`None`).
    async fn tie(&self, name: &LockName, owner: &OwnerId) -> Result<Option<HolderTie>, Error> {
        tie(&self.shared, &self.session, name, owner)
            .await
            .map_err(during(Operation::Tie))
    }

    /// There is no line: this is [`watch`](Lock::watch).
    async fn watch_turn(
        &self,
        name: &LockName,
        _owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        self.watch(name).await
    }

    /// Completes at a release's NOTIFY, or after a short while without one (a holder whose
    /// connection died sends none).
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        let change = self.shared.notifier.watch(name).await?;
        Ok(change.map(|change| -> ChangeFuture {
            Box::pin(async move {
                tokio::select! {
                    () = change => {}
                    () = tokio::time::sleep(RECHECK) => {}
                }
            })
        }))
    }
}

/// How often one call starts over when the lock changes hands under it.
const ATTEMPTS: usize = 16;
/// How long a force release waits between looks at whether the terminated holder is gone.
const GONE_POLL: Duration = Duration::from_millis(5);

fn keys(shared: &Shared, name: &LockName) -> (i64, i32, i32) {
    let key = shared.advisory_key(name);
    let (hi, lo) = key::split(key);
    (key, hi, lo)
}

async fn try_acquire(
    shared: &Shared,
    session: &Session,
    claim: Claim<'_>,
) -> Result<AcquireOutcome, Error> {
    let (name, owner, ttl) = (claim.name, claim.owner, claim.ttl);
    let kind = claim.kind.normalized();
    let lease = |token| {
        AcquireOutcome::Acquired(Lease {
            name: name.clone(),
            owner: owner.clone(),
            token,
            ttl,
            kind,
        })
    };
    if let Some(held) = session.get(name, owner)
        && still_held(shared, session, name, &held).await?
    {
        if held.kind != kind {
            return Err(raw::mismatch(claim, held.kind));
        }
        return Ok(lease(held.token));
    }
    let reader = kind == Kind::Shared;
    let (key, hi, lo) = keys(shared, name);
    let config = &shared.config;
    let limit = config.connect_timeout();
    let mut reconnects = session.pool.size() + 1;
    for _ in 0..ATTEMPTS {
        let mut conn = session.take(config, Operation::TryAcquire).await?;
        let query = shared
            .sql
            .session_acquire
            .query()
            .bind(name.as_str().to_owned())
            .bind(owner.as_str().to_owned())
            .bind(key)
            .bind(hi)
            .bind(lo)
            .bind(reader);
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
                return Err(errors::map(config, Operation::TryAcquire, e));
            }
            Err(_) => {
                drop(conn);
                return Err(errors::statement_timed_out(
                    config,
                    Operation::TryAcquire,
                    limit,
                ));
            }
        };
        let ok: Option<bool> = get(&row, "ok")?;
        let token: Option<i64> = get(&row, "token")?;
        match (ok, token) {
            (Some(true), Some(token)) => {
                let token = token_of(shared, name, token)?;
                session.insert(name, Held::new(owner.clone(), token, kind, conn.keep()));
                return Ok(lease(token));
            }
            (Some(false), _) => {
                // Nothing taken: the connection goes back to the pool.
                drop(conn.keep());
                match refused(shared, claim).await? {
                    Some(outcome) => return outcome,
                    // Released in between: try again.
                    None => continue,
                }
            }
            (Some(true), None) if reader => {
                // The owner already reads through another session (another handle): the
                // statement undid this hold, recorded nowhere; if it could not, the
                // connection goes, and the hold with it.
                if get::<Option<bool>>(&row, "undone")? == Some(true) {
                    drop(conn.keep());
                } else {
                    drop(conn);
                }
                match refused(shared, claim).await? {
                    Some(outcome) => return outcome,
                    None => continue,
                }
            }
            (None, _) => {
                drop(conn);
                return Err(errors::refused(
                    Operation::TryAcquire,
                    format!(
                        "the server session of a pool connection already held the advisory lock \
                         of {name:?}: connections are shared behind a pooler (PgBouncer in \
                         transaction mode?), where mode=session cannot work; connect to Postgres \
                         directly"
                    ),
                ));
            }
            (Some(true), None) => {
                drop(conn);
                return Err(errors::refused(
                    Operation::TryAcquire,
                    format!("took the lock on {name:?} but wrote no token"),
                ));
            }
        }
    }
    Err(errors::refused(
        Operation::TryAcquire,
        format!("the lock {name:?} changed hands {ATTEMPTS} times during one call; try again"),
    ))
}

/// The answer to `claim` refused by the server: the holder with the lowest token, or the
/// kind mismatch when the claim's owner holds the name (through another handle) with
/// another kind; `None` when no one holds it any more.
async fn refused(
    shared: &Shared,
    claim: Claim<'_>,
) -> Result<Option<Result<AcquireOutcome, Error>>, Error> {
    let Some(holders) = holders(shared, claim.name).await? else {
        return Ok(None);
    };
    let kind = claim.kind.normalized();
    if let Some(own) = holders
        .as_slice()
        .iter()
        .find(|h| h.owner == *claim.owner && h.kind != kind)
    {
        return Ok(Some(Err(raw::mismatch(claim, own.kind))));
    }
    Ok(Some(Ok(AcquireOutcome::Held(holders.first().clone()))))
}

async fn tie(
    shared: &Shared,
    session: &Session,
    name: &LockName,
    owner: &OwnerId,
) -> Result<Option<HolderTie>, Error> {
    let Some(held) = session.get(name, owner) else {
        return Ok(None);
    };
    if !still_held(shared, session, name, &held).await? {
        return Ok(None);
    }
    let config = &shared.config;
    let limit = config.connect_timeout();
    let mut slot = held.conn.lock().await;
    let Some(conn) = slot.as_mut() else {
        return Ok(None);
    };
    let query = sqlx::query("SELECT inet_client_port() AS client, inet_server_port() AS server");
    let row = match timeout(limit, query.fetch_one(&mut **conn)).await {
        Ok(Ok(row)) => row,
        Ok(Err(e)) => return Err(errors::map(config, Operation::Tie, e)),
        Err(_) => return Err(errors::timed_out(config, Operation::Tie, limit)),
    };
    let ports = (
        get::<Option<i32>>(&row, "client")?,
        get::<Option<i32>>(&row, "server")?,
    );
    let (Some(client), Some(server)) = ports else {
        return Ok(None); // a Unix socket
    };
    let (Ok(client), Ok(server)) = (u16::try_from(client), u16::try_from(server)) else {
        return Ok(None);
    };
    let Some(socket) = crate::socket::find(client, server) else {
        return Ok(None);
    };
    let kept = socket.try_clone().map_err(|e| {
        let message = "cannot copy the connection's socket".to_owned();
        Error::backend(errors::BACKEND, Operation::Tie, message, Some(e.into()))
    })?;
    *held.tied.lock().unwrap_or_else(|e| e.into_inner()) = Some(kept);
    Ok(Some(HolderTie::from_fd(socket)))
}

/// Whether `held`'s connection still holds the lock. A connection found dead or without the
/// lock is closed and forgotten; only a timeout is an error (the lock may still stand).
async fn still_held(
    shared: &Shared,
    session: &Session,
    name: &LockName,
    held: &Arc<Held>,
) -> Result<bool, Error> {
    let config = &shared.config;
    let limit = config.connect_timeout();
    let (key, _, _) = keys(shared, name);
    let mut slot = held.conn.lock().await;
    let Some(conn) = slot.as_mut() else {
        session.remove(name, held);
        return Ok(false);
    };
    let query = shared.sql.session_check.query().bind(key);
    let alive = match timeout(limit, query.fetch_one(&mut **conn)).await {
        Ok(Ok(row)) => get::<bool>(&row, "held")?,
        Ok(Err(e)) if connection_lost(&e) => false,
        Ok(Err(e)) => return Err(errors::map(config, Operation::Inspect, e)),
        Err(_) => return Err(errors::timed_out(config, Operation::Inspect, limit)),
    };
    if !alive {
        held.close(slot.take());
        session.remove(name, held);
    }
    Ok(alive)
}

async fn renew(
    shared: &Shared,
    session: &Session,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    match session.get(name, owner) {
        Some(held) => {
            if still_held(shared, session, name, &held).await? {
                return Ok(RenewOutcome::Renewed(Lease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token: held.token,
                    ttl,
                    kind: held.kind,
                }));
            }
            Ok(RenewOutcome::Lost)
        }
        None => Ok(RenewOutcome::Lost),
    }
}

async fn release(
    shared: &Shared,
    session: &Session,
    name: &LockName,
    owner: &OwnerId,
) -> Result<ReleaseOutcome, Error> {
    if let Some(held) = session.get(name, owner) {
        let config = &shared.config;
        let limit = config.connect_timeout();
        let (key, _, _) = keys(shared, name);
        let mut slot = held.conn.lock().await;
        session.remove(name, &held);
        if let Some(conn) = slot.take() {
            let mut conn = ClosedUnlessKept(Some(conn));
            let query = shared
                .sql
                .session_release
                .query()
                .bind(key)
                .bind(shared.channel.clone())
                .bind(name.as_str().to_owned())
                .bind(held.kind == Kind::Shared);
            match timeout(limit, query.fetch_one(&mut **conn)).await {
                Ok(Ok(row)) if get::<bool>(&row, "ok")? => {
                    if held.is_tied() {
                        // Copies of its socket are out there: it never serves another lock.
                        held.close(conn.0.take());
                    } else {
                        // Holds nothing now: back to the pool.
                        drop(conn.keep());
                    }
                    return Ok(ReleaseOutcome::Released);
                }
                Ok(Ok(_)) => held.close(conn.0.take()),
                Ok(Err(e)) if connection_lost(&e) => held.close(conn.0.take()),
                Ok(Err(e)) => {
                    held.close(conn.0.take());
                    return Err(errors::map(config, Operation::Release, e));
                }
                Err(_) => {
                    // Closing the connection ends the lock once the server reads again.
                    held.close(conn.0.take());
                    return Err(errors::statement_timed_out(
                        config,
                        Operation::Release,
                        limit,
                    ));
                }
            }
        }
        // The lock had been lost already.
    }
    Ok(match holders(shared, name).await? {
        Some(_) => ReleaseOutcome::NotOwner,
        None => ReleaseOutcome::NotLocked,
    })
}

/// Ends every session that holds `name` (`pg_terminate_backend`, as an operator would), waits
/// until the lock is gone, and wakes the waiters.
async fn force_release(shared: &Shared, name: &LockName) -> Result<ReleaseOutcome, Error> {
    let config = &shared.config;
    let limit = config.connect_timeout();
    let deadline = Instant::now() + limit;
    let mut conn = shared.db.acquire(Operation::ForceRelease).await?;
    let result = tokio::time::timeout_at(
        deadline + GONE_POLL * 4,
        terminate(shared, &mut conn, name, deadline),
    )
    .await;
    match result {
        Ok(Ok(Some(outcome))) => Ok(outcome),
        Ok(Ok(None)) => Err(errors::refused(
            Operation::ForceRelease,
            format!(
                "the session holding {name:?} was told to end but still held the lock after \
                 {limit:?}"
            ),
        )),
        Ok(Err(e)) => {
            if connection_lost(&e) {
                conn.close_on_drop();
            }
            Err(errors::map(config, Operation::ForceRelease, e))
        }
        Err(_) => {
            conn.close_on_drop();
            Err(errors::statement_timed_out(
                config,
                Operation::ForceRelease,
                limit,
            ))
        }
    }
}

/// [`force_release`]'s transaction; `None` when the terminated holder still holds the lock
/// at `deadline`.
async fn terminate(
    shared: &Shared,
    conn: &mut PgConnection,
    name: &LockName,
    deadline: Instant,
) -> Result<Option<ReleaseOutcome>, sqlx::Error> {
    let (key, hi, lo) = keys(shared, name);
    let mut tx = conn.begin().await?;
    shared
        .sql
        .session_step
        .query()
        .bind(hi)
        .bind(lo)
        .fetch_one(&mut *tx)
        .await?;
    // Without the right to signal the holder, Postgres raises an error here that says so.
    let holders = shared
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
        let row = shared
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
    shared
        .sql
        .notify
        .query()
        .bind(shared.channel.clone())
        .bind(name.as_str().to_owned())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(ReleaseOutcome::Released))
}

/// Who holds `name` (the writer, or every reader), read under the shared per-name step lock.
async fn holders(shared: &Shared, name: &LockName) -> Result<Option<Holders>, Error> {
    let (key, hi, lo) = keys(shared, name);
    let step = || shared.sql.session_step_shared.query().bind(hi).bind(lo);
    let read = || {
        shared
            .sql
            .session_holder
            .query()
            .bind(name.as_str().to_owned())
            .bind(key)
    };
    let rows = shared
        .db
        .fetch_steps(Operation::Inspect, &[&step, &read])
        .await?;
    let mut holders = Vec::with_capacity(rows.len());
    for row in &rows {
        let pid: i32 = get(row, "pid")?;
        let reader: bool = get(row, "shared")?;
        let (owner, token): (Option<String>, Option<i64>) =
            (get(row, "owner")?, get(row, "token")?);
        let (Some(owner), Some(token)) = (owner, token) else {
            let (what, whom) = if reader {
                ("a shared", "this reader")
            } else {
                ("the", "an owner")
            };
            return Err(shared.corrupt(
                name,
                format!(
                    "a session (pid {pid}) holds {what} advisory lock of this name, but the table \
                     names {whom} no owner: it was not taken through lock-postgres (does another \
                     program use the key?)"
                ),
            ));
        };
        holders.push(Holder {
            owner: owner_of(shared, name, owner)?,
            token: token_of(shared, name, token)?,
            expires_in: None,
            kind: if reader {
                Kind::Shared
            } else {
                Kind::Exclusive
            },
        });
    }
    Ok(Holders::new(holders))
}

async fn inspect(shared: &Shared, name: &LockName) -> Result<LockState, Error> {
    Ok(match holders(shared, name).await? {
        Some(holders) => LockState::Locked(holders),
        None => LockState::Open,
    })
}

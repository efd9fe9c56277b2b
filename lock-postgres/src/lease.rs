//! [`LeaseLock`]: one row per name, each operation one statement on the server's clock.
//!
//! Shared leases and permits live in the same row (`owner` is `*`, the leases are entries of
//! `holders`), so the exclusive statements stay as they were; a claim of another kind, or an
//! exclusive one they did not settle, goes through `Statements::claim`, which decides as
//! `raw::admit` does in SQL, again on the row's newest version.
//!
//! A statement decides atomically (the row is locked by the `INSERT … ON CONFLICT` or
//! `UPDATE`, and its `WHERE` is checked on the newest version), and also returns the row as
//! its snapshot saw it, to say who holds it when it did not change. Only when the row changed
//! between the snapshot and the decision (a race) does a second statement read it afresh.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lock_core::Operation;
use lock_core::raw::{ChangeFuture, InLineOutcome, during};
use lock_core::{
    AcquireOutcome, Capabilities, Claim, Error, FencingToken, Holder, Holders, Kind, Lease, Lock,
    LockName, LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};
use sqlx::postgres::{PgPool, PgRow};

use crate::config::{Config, Mode};
use crate::db::get;
use crate::errors;
use crate::shared::{Pools, Shared};

/// Leases in a Postgres table (`mode=lease`, the default): a row per name, with a ttl on the
/// server's clock, fencing tokens and a first-come-first-served line of waiters; exclusive
/// leases, shared leases (readers and writers) and semaphores of N permits.
///
/// One handle owns a small connection pool and one LISTEN connection (opened by the first
/// waiter), or uses the caller's pool ([`with_pool`](Self::with_pool)). Cheap to clone:
/// clones share all of it. See the crate documentation for the table and the guarantees.
#[derive(Clone)]
pub struct LeaseLock {
    shared: Arc<Shared>,
}

impl LeaseLock {
    /// Connects to the Postgres at `url` (see [`Config::from_url`]), creating the table (and
    /// its schema) when missing.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a URL that cannot be used or says `mode=session`;
    /// [`Error::Unreachable`] when no Postgres answers within `connect_timeout` (nothing
    /// listening, not Postgres, no answer); [`Error::Backend`] when it refuses (wrong password,
    /// no such database, no right to create the table) or a table of that name is not a lock
    /// table. No message holds the password.
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

    /// Leases on the caller's `pool` (see the crate documentation, "Your own pool"): `config`
    /// gives the table, the timeouts and `listen`; the pool gives the server and connections.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`Error::InvalidInput`] when the pool's connections
    /// run with `synchronous_commit=off`.
    pub async fn with_pool(pool: PgPool, config: Config) -> Result<Self, Error> {
        Self::open(config, Pools::Given(pool)).await
    }

    async fn open(config: Config, pools: Pools) -> Result<Self, Error> {
        let shared = Shared::open(config, Mode::Lease, pools, "LeaseLock").await?;
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The configuration this handle was made with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

impl fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseLock")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Lock for LeaseLock {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: self.shared.config.listen(),
            cross_process: true,
            owner_on_any_handle: true,
            fair_line: true,
            holder_tie: false,
            permits: true,
            shared: true,
        }
    }

    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        self.capabilities().check(claim.kind)?;
        try_acquire(&self.shared, claim.with_kind(claim.kind))
            .await
            .map_err(during(Operation::TryAcquire))
    }

    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        self.capabilities().check(claim.kind)?;
        try_acquire_in_line(&self.shared, claim.with_kind(claim.kind), patience)
            .await
            .map_err(during(Operation::TryAcquireInLine))
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        leave_line(&self.shared, name, owner)
            .await
            .map_err(during(Operation::LeaveLine))
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        renew(&self.shared, name, owner, ttl)
            .await
            .map_err(during(Operation::Renew))
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        release(&self.shared, name, owner)
            .await
            .map_err(during(Operation::Release))
    }

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

    /// A release NOTIFYs the owners at the front of the line that the freed room serves, and
    /// only those waiters' turns wake.
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        self.shared.notifier.watch_turn(name, owner).await
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        self.shared.notifier.watch(name).await
    }
}

/// How often one call starts over when the lock changes hands under it.
const ATTEMPTS: usize = 16;

fn ttl_millis(ttl: Ttl) -> i64 {
    // At most 365 days: fits.
    ttl.as_millis() as i64
}

async fn try_acquire(shared: &Shared, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
    let (name, owner, ttl) = (claim.name, claim.owner, claim.ttl);
    if claim.kind == Kind::Exclusive {
        // The exclusive statement: one row, no holders array to read or write.
        let rows = shared
            .db
            .fetch(Operation::TryAcquire, || {
                shared
                    .sql
                    .acquire
                    .query()
                    .bind(name.as_str().to_owned())
                    .bind(owner.as_str().to_owned())
                    .bind(ttl_millis(ttl))
            })
            .await?;
        let row = one_row(shared, name, &rows)?;
        if let Some(token) = get::<Option<i64>>(row, "won")? {
            return Ok(AcquireOutcome::Acquired(
                claim.lease(token_of(shared, name, token)?),
            ));
        }
        if let Some(holder) = live_holder(shared, name, row, "owner", "token", "left_us")?
            && holder.owner != *owner
        {
            return Ok(AcquireOutcome::Held(holder));
        }
        // Shared leases or permits hold the name (or the row changed between the statement's
        // snapshot and its decision): the statement of every kind says which.
    } else {
        // A shared lease or a permit where there is plainly room: one small statement.
        let rows = shared
            .db
            .fetch(Operation::TryAcquire, || {
                shared
                    .sql
                    .take_room
                    .query()
                    .bind(name.as_str().to_owned())
                    .bind(owner.as_str().to_owned())
                    .bind(ttl_millis(ttl))
                    .bind(part(claim.kind.capacity()))
            })
            .await?;
        if let Some(row) = rows.first() {
            let token: i64 = get(row, "token")?;
            return Ok(AcquireOutcome::Acquired(
                claim.lease(token_of(shared, name, token)?),
            ));
        }
        // Full, another kind, the caller's own lease, or a new name: the statement of every
        // kind decides and says which.
    }
    for _ in 0..ATTEMPTS {
        let rows = shared
            .db
            .fetch(Operation::TryAcquire, || {
                bind_claim(shared.sql.claim.query(), claim)
            })
            .await?;
        let row = one_row(shared, name, &rows)?;
        match decided(shared, claim, row)? {
            Decided::Granted(lease) => return Ok(AcquireOutcome::Acquired(lease)),
            Decided::Full(holder) => return Ok(AcquireOutcome::Held(holder)),
            // Nothing stands ahead of a plain try; a race otherwise: ask again.
            Decided::Behind | Decided::Raced => continue,
        }
    }
    Err(changed_hands(name, Operation::TryAcquire))
}

/// The claim's parameters `$1`…`$5`: name, owner, ttl, capacity, weight.
fn bind_claim(query: crate::sql::PgQuery, claim: Claim<'_>) -> crate::sql::PgQuery {
    query
        .bind(claim.name.as_str().to_owned())
        .bind(claim.owner.as_str().to_owned())
        .bind(ttl_millis(claim.ttl))
        .bind(part(claim.kind.capacity()))
        .bind(part(claim.kind.weight()))
}

/// A capacity or weight (at most [`lock_core::SHARED_CAPACITY`]) as Postgres's `integer`.
fn part(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What a claim statement's row says.
enum Decided {
    Granted(Lease),
    Full(Holder),
    Behind,
    /// The snapshot allowed the claim, the row's newest version did not.
    Raced,
}

/// Reads a claim statement's answer (see `Statements::claim`).
fn decided(shared: &Shared, claim: Claim<'_>, row: &PgRow) -> Result<Decided, Error> {
    let name = claim.name;
    if let Some(token) = get::<Option<i64>>(row, "won")? {
        return Ok(Decided::Granted(
            claim.lease(token_of(shared, name, token)?),
        ));
    }
    let decision: String = get(row, "decision")?;
    let held_as = || -> Result<Kind, Error> {
        let (cap, w): (Option<i32>, i32) = (get(row, "held_cap")?, get(row, "held_w")?);
        kind_of(shared, name, cap.unwrap_or(0), w)
    };
    match decision.as_str() {
        "mismatch" => Err(lock_core::raw::mismatch(claim, held_as()?)),
        "behind" => Ok(Decided::Behind),
        "full" => match live_holder(
            shared,
            name,
            row,
            "soon_owner",
            "soon_token",
            "soon_left_us",
        )? {
            Some(holder) => Ok(Decided::Full(Holder {
                kind: held_as()?,
                ..holder
            })),
            None => Ok(Decided::Raced),
        },
        _ => Ok(Decided::Raced),
    }
}

/// The kind of a lease stored as `capacity` and `weight`.
fn kind_of(shared: &Shared, name: &LockName, capacity: i32, weight: i32) -> Result<Kind, Error> {
    u32::try_from(capacity)
        .ok()
        .zip(u32::try_from(weight).ok())
        .and_then(|(c, w)| Kind::from_parts(c, w))
        .ok_or_else(|| {
            shared.corrupt(
                name,
                format!("capacity {capacity} and weight {weight} are no kind of lease"),
            )
        })
}

async fn try_acquire_in_line(
    shared: &Shared,
    claim: Claim<'_>,
    patience: Duration,
) -> Result<InLineOutcome, Error> {
    let (name, owner) = (claim.name, claim.owner);
    // At least a millisecond, at most a year.
    let patience_ms = lock_core::raw::patience_millis(patience) as i64;
    // Woken for a turn a NOTIFY said is ours: pass it on if another's place shows ahead.
    let pass = shared
        .notifier
        .take_named(name, owner)
        .then(|| shared.channel.clone());
    for _ in 0..ATTEMPTS {
        let rows = shared
            .db
            .fetch(Operation::TryAcquireInLine, || {
                bind_claim(shared.sql.in_line.query(), claim)
                    .bind(patience_ms)
                    .bind(pass.clone())
            })
            .await?;
        let row = one_row(shared, name, &rows)?;
        match decided(shared, claim, row)? {
            Decided::Granted(lease) => return Ok(InLineOutcome::Acquired(lease)),
            Decided::Full(holder) => return Ok(InLineOutcome::Held(holder)),
            Decided::Behind => {
                let left: i64 = get::<Option<i64>>(row, "first_left_ms")?.unwrap_or(0);
                return Ok(InLineOutcome::Behind {
                    first_kept_for: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
                });
            }
            // The lock row changed between the statement's snapshot and its decision: ask
            // again, which keeps the place.
            Decided::Raced => continue,
        }
    }
    Err(changed_hands(name, Operation::TryAcquireInLine))
}

async fn leave_line(shared: &Shared, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
    shared
        .db
        .fetch(Operation::LeaveLine, || {
            shared
                .sql
                .leave_line
                .query()
                .bind(name.as_str().to_owned())
                .bind(owner.as_str().to_owned())
                .bind(shared.channel.clone())
        })
        .await?;
    Ok(())
}

async fn renew(
    shared: &Shared,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    let rows = shared
        .db
        .fetch(Operation::Renew, || {
            shared
                .sql
                .renew
                .query()
                .bind(name.as_str().to_owned())
                .bind(owner.as_str().to_owned())
                .bind(ttl_millis(ttl))
        })
        .await?;
    Ok(match rows.first() {
        Some(row) => RenewOutcome::Renewed(Lease {
            name: name.clone(),
            owner: owner.clone(),
            token: token_of(shared, name, get(row, "token")?)?,
            ttl,
            kind: kind_of(shared, name, get(row, "cap")?, get(row, "w")?)?,
        }),
        None => RenewOutcome::Lost,
    })
}

async fn release(
    shared: &Shared,
    name: &LockName,
    owner: &OwnerId,
) -> Result<ReleaseOutcome, Error> {
    for _ in 0..ATTEMPTS {
        let rows = shared
            .db
            .fetch(Operation::Release, || {
                shared
                    .sql
                    .release
                    .query()
                    .bind(name.as_str().to_owned())
                    .bind(owner.as_str().to_owned())
                    .bind(shared.channel.clone())
            })
            .await?;
        let row = one_row(shared, name, &rows)?;
        if get::<i64>(row, "released")? > 0 {
            return Ok(ReleaseOutcome::Released);
        }
        let before: Option<String> = get(row, "owner")?;
        let (live, mine): (bool, bool) = (get(row, "live")?, get(row, "mine")?);
        match before {
            Some(other) if live && !mine && other != owner.as_str() => {
                return Ok(ReleaseOutcome::NotOwner);
            }
            _ if !live => return Ok(ReleaseOutcome::NotLocked),
            _ => {}
        }
        // The caller's lease stood in the snapshot but was gone when the update looked.
        match inspect(shared, name).await? {
            LockState::Locked(holders) if holders.into_iter().all(|h| h.owner != *owner) => {
                return Ok(ReleaseOutcome::NotOwner);
            }
            LockState::Open => return Ok(ReleaseOutcome::NotLocked),
            _ => continue,
        }
    }
    Err(changed_hands(name, Operation::Release))
}

async fn force_release(shared: &Shared, name: &LockName) -> Result<ReleaseOutcome, Error> {
    let rows = shared
        .db
        .fetch(Operation::ForceRelease, || {
            shared
                .sql
                .force_release
                .query()
                .bind(name.as_str().to_owned())
                .bind(shared.channel.clone())
        })
        .await?;
    let row = one_row(shared, name, &rows)?;
    Ok(if get::<i64>(row, "released")? > 0 {
        ReleaseOutcome::Released
    } else {
        ReleaseOutcome::NotLocked
    })
}

async fn inspect(shared: &Shared, name: &LockName) -> Result<LockState, Error> {
    let rows = shared
        .db
        .fetch(Operation::Inspect, || {
            shared.sql.inspect.query().bind(name.as_str().to_owned())
        })
        .await?;
    let mut holders = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind = match get::<Option<i32>>(row, "cap")? {
            None => Kind::Exclusive,
            Some(cap) => kind_of(shared, name, cap, 1)?,
        };
        if let Some(holder) = live_holder(shared, name, row, "owner", "token", "left_us")? {
            holders.push(Holder { kind, ..holder });
        }
    }
    Ok(match Holders::new(holders) {
        Some(holders) => LockState::Locked(holders),
        None => LockState::Open,
    })
}

fn one_row<'r>(shared: &Shared, name: &LockName, rows: &'r [PgRow]) -> Result<&'r PgRow, Error> {
    rows.first().ok_or_else(|| {
        let message = format!(
            "Postgres at {} answered no row for {name:?} where one is always returned",
            shared.config.target()
        );
        // The trait method sets its own operation (`during`).
        errors::refused(Operation::Inspect, message)
    })
}

/// The holder in `row` if it has an owner and time left.
fn live_holder(
    shared: &Shared,
    name: &LockName,
    row: &PgRow,
    owner: &str,
    token: &str,
    left_us: &str,
) -> Result<Option<Holder>, Error> {
    let (owner, token, left): (Option<String>, Option<i64>, Option<i64>) =
        (get(row, owner)?, get(row, token)?, get(row, left_us)?);
    match (owner, token, left) {
        (Some(owner), Some(token), Some(left)) if left > 0 && owner != crate::sql::MANY => {
            Ok(Some(Holder {
                owner: owner_of(shared, name, owner)?,
                token: token_of(shared, name, token)?,
                expires_in: Some(Duration::from_micros(left as u64)),
                kind: Kind::Exclusive,
            }))
        }
        _ => Ok(None),
    }
}

/// A stored owner id, checked.
pub(crate) fn owner_of(shared: &Shared, name: &LockName, owner: String) -> Result<OwnerId, Error> {
    OwnerId::new(owner.clone())
        .map_err(|_| shared.corrupt(name, format!("owner {owner:?} is not an owner id")))
}

/// A stored token, checked.
pub(crate) fn token_of(
    shared: &Shared,
    name: &LockName,
    token: i64,
) -> Result<FencingToken, Error> {
    u64::try_from(token)
        .ok()
        .and_then(FencingToken::new)
        .ok_or_else(|| shared.corrupt(name, format!("token {token} is not positive")))
}

fn changed_hands(name: &LockName, doing: Operation) -> Error {
    let message =
        format!("the lock {name:?} changed hands {ATTEMPTS} times during one call; try again");
    errors::refused(doing, message)
}

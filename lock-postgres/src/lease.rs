//! Lease mode: one row per name, each operation one statement on the server's clock.
//!
//! A statement decides atomically (the row is locked by the `INSERT … ON CONFLICT` or
//! `UPDATE`, and its `WHERE` is checked on the newest version), and also returns the row as
//! its snapshot saw it, to say who holds it when it did not change. Only when the row changed
//! between the snapshot and the decision (a race) does a second statement read it afresh.

use std::time::Duration;

use lock_core::raw::InLineOutcome;
use lock_core::{
    AcquireOutcome, Error, FencingToken, Holder, Lease, LockName, LockState, OwnerId,
    ReleaseOutcome, RenewOutcome, Ttl,
};
use sqlx::postgres::PgRow;

use crate::Inner;
use crate::db::get;

/// How often one call starts over when the lock changes hands under it.
const ATTEMPTS: usize = 16;

fn ttl_millis(ttl: Ttl) -> i64 {
    // At most 365 days: fits.
    ttl.as_millis() as i64
}

pub(crate) async fn try_acquire(
    inner: &Inner,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<AcquireOutcome, Error> {
    for _ in 0..ATTEMPTS {
        let rows = inner
            .db
            .fetch("try acquire", || {
                inner
                    .sql
                    .acquire
                    .query()
                    .bind(name.as_str().to_owned())
                    .bind(owner.as_str().to_owned())
                    .bind(ttl_millis(ttl))
            })
            .await?;
        let row = one_row(inner, name, &rows)?;
        if let Some(token) = get::<Option<i64>>(row, "won")? {
            return Ok(AcquireOutcome::Acquired(Lease {
                name: name.clone(),
                owner: owner.clone(),
                token: token_of(inner, name, token)?,
                ttl,
            }));
        }
        if let Some(holder) = live_holder(inner, name, row, "owner", "token", "left_us")?
            && holder.owner != *owner
        {
            return Ok(AcquireOutcome::Held(holder));
        }
        // The row changed between the statement's snapshot and its decision: look again.
        match inspect(inner, name).await? {
            LockState::Locked(holder) if holder.owner != *owner => {
                return Ok(AcquireOutcome::Held(holder));
            }
            _ => continue,
        }
    }
    Err(changed_hands(name, "try acquire"))
}

pub(crate) async fn try_acquire_in_line(
    inner: &Inner,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
    patience: Duration,
) -> Result<InLineOutcome, Error> {
    // At least a millisecond, at most a year.
    let patience_ms = lock_core::raw::patience_millis(patience) as i64;
    // Woken for a turn a NOTIFY said is ours: pass it on if another's place shows ahead.
    let pass = inner
        .notifier
        .take_named(name, owner)
        .then(|| inner.channel.clone());
    for _ in 0..ATTEMPTS {
        let rows = inner
            .db
            .fetch("try acquire in line", || {
                inner
                    .sql
                    .in_line
                    .query()
                    .bind(name.as_str().to_owned())
                    .bind(owner.as_str().to_owned())
                    .bind(ttl_millis(ttl))
                    .bind(patience_ms)
                    .bind(pass.clone())
            })
            .await?;
        let row = one_row(inner, name, &rows)?;
        if let Some(token) = get::<Option<i64>>(row, "won")? {
            return Ok(InLineOutcome::Acquired(Lease {
                name: name.clone(),
                owner: owner.clone(),
                token: token_of(inner, name, token)?,
                ttl,
            }));
        }
        match live_holder(inner, name, row, "owner", "token", "left_us")? {
            Some(holder) if holder.owner != *owner => return Ok(InLineOutcome::Held(holder)),
            None if get::<bool>(row, "behind")? => {
                let left: i64 = get::<Option<i64>>(row, "first_left_ms")?.unwrap_or(0);
                return Ok(InLineOutcome::Behind {
                    first_kept_for: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
                });
            }
            // The lock row changed between the statement's snapshot and its decision (or the
            // caller's own lease lapsed meanwhile): ask again, which keeps the place.
            _ => continue,
        }
    }
    Err(changed_hands(name, "try acquire in line"))
}

pub(crate) async fn leave_line(
    inner: &Inner,
    name: &LockName,
    owner: &OwnerId,
) -> Result<(), Error> {
    inner
        .db
        .fetch("leave line", || {
            inner
                .sql
                .leave_line
                .query()
                .bind(name.as_str().to_owned())
                .bind(owner.as_str().to_owned())
                .bind(inner.channel.clone())
        })
        .await?;
    Ok(())
}

pub(crate) async fn renew(
    inner: &Inner,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    let rows = inner
        .db
        .fetch("renew", || {
            inner
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
            token: token_of(inner, name, get(row, "token")?)?,
            ttl,
        }),
        None => RenewOutcome::Lost,
    })
}

pub(crate) async fn release(
    inner: &Inner,
    name: &LockName,
    owner: &OwnerId,
) -> Result<ReleaseOutcome, Error> {
    for _ in 0..ATTEMPTS {
        let rows = inner
            .db
            .fetch("release", || {
                inner
                    .sql
                    .release
                    .query()
                    .bind(name.as_str().to_owned())
                    .bind(owner.as_str().to_owned())
                    .bind(inner.channel.clone())
            })
            .await?;
        let row = one_row(inner, name, &rows)?;
        if get::<i64>(row, "released")? > 0 {
            return Ok(ReleaseOutcome::Released);
        }
        let before: Option<String> = get(row, "owner")?;
        let live: bool = get(row, "live")?;
        match before {
            Some(other) if live && other != owner.as_str() => return Ok(ReleaseOutcome::NotOwner),
            _ if !live => return Ok(ReleaseOutcome::NotLocked),
            _ => {}
        }
        // The caller's lease stood in the snapshot but was gone when the update looked.
        match inspect(inner, name).await? {
            LockState::Locked(holder) if holder.owner != *owner => {
                return Ok(ReleaseOutcome::NotOwner);
            }
            LockState::Open => return Ok(ReleaseOutcome::NotLocked),
            _ => continue,
        }
    }
    Err(changed_hands(name, "release"))
}

pub(crate) async fn force_release(inner: &Inner, name: &LockName) -> Result<ReleaseOutcome, Error> {
    let rows = inner
        .db
        .fetch("force release", || {
            inner
                .sql
                .force_release
                .query()
                .bind(name.as_str().to_owned())
                .bind(inner.channel.clone())
        })
        .await?;
    let row = one_row(inner, name, &rows)?;
    Ok(if get::<i64>(row, "released")? > 0 {
        ReleaseOutcome::Released
    } else {
        ReleaseOutcome::NotLocked
    })
}

pub(crate) async fn inspect(inner: &Inner, name: &LockName) -> Result<LockState, Error> {
    let rows = inner
        .db
        .fetch("inspect", || {
            inner.sql.inspect.query().bind(name.as_str().to_owned())
        })
        .await?;
    Ok(match rows.first() {
        Some(row) => match live_holder(inner, name, row, "owner", "token", "left_us")? {
            Some(holder) => LockState::Locked(holder),
            None => LockState::Open,
        },
        None => LockState::Open,
    })
}

fn one_row<'r>(inner: &Inner, name: &LockName, rows: &'r [PgRow]) -> Result<&'r PgRow, Error> {
    rows.first().ok_or_else(|| Error::Backend {
        message: format!(
            "Postgres at {} answered no row for {name:?} where one is always returned",
            inner.config.target()
        ),
        source: None,
    })
}

/// The holder in `row` if it has an owner and time left.
fn live_holder(
    inner: &Inner,
    name: &LockName,
    row: &PgRow,
    owner: &str,
    token: &str,
    left_us: &str,
) -> Result<Option<Holder>, Error> {
    let (owner, token, left): (Option<String>, Option<i64>, Option<i64>) =
        (get(row, owner)?, get(row, token)?, get(row, left_us)?);
    match (owner, token, left) {
        (Some(owner), Some(token), Some(left)) if left > 0 => Ok(Some(Holder {
            owner: owner_of(inner, name, owner)?,
            token: token_of(inner, name, token)?,
            expires_in: Some(Duration::from_micros(left as u64)),
        })),
        _ => Ok(None),
    }
}

/// A stored owner id, checked.
pub(crate) fn owner_of(inner: &Inner, name: &LockName, owner: String) -> Result<OwnerId, Error> {
    OwnerId::new(owner.clone())
        .map_err(|_| inner.corrupt(name, format!("owner {owner:?} is not an owner id")))
}

/// A stored token, checked.
pub(crate) fn token_of(inner: &Inner, name: &LockName, token: i64) -> Result<FencingToken, Error> {
    u64::try_from(token)
        .ok()
        .and_then(FencingToken::new)
        .ok_or_else(|| inner.corrupt(name, format!("token {token} is not positive")))
}

fn changed_hands(name: &LockName, doing: &str) -> Error {
    Error::Backend {
        message: format!(
            "{doing}: the lock {name:?} changed hands {ATTEMPTS} times during one call; try again"
        ),
        source: None,
    }
}

//! The lease decisions: what each operation answers and writes, given a name's record and
//! line as the transaction engine read them (`transaction.rs`). Nothing here touches a file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lock_core::raw::InLineOutcome;
use lock_core::{
    AcquireOutcome, Error, FencingToken, Holder, HolderTie, Holders, Kind, Lease, LockName,
    LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

use crate::record::Record;
use crate::transaction::Txn;

/// The system clock at the moment an operation holds the file.
#[derive(Clone, Copy)]
pub(crate) struct Now {
    pub(crate) ms: u64,
    micros: u64,
}

impl Now {
    pub(crate) fn read() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            micros: u64::try_from(since.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// The end of a lease of `ttl` granted now, in whole milliseconds rounded up: never
    /// before now + ttl, which is never before the client's send time + ttl (rounding down
    /// could end a lease up to a millisecond before its holder's guard stops trusting it).
    fn expiry(self, ttl: Ttl) -> u64 {
        self.micros.div_ceil(1000).saturating_add(ttl.as_millis())
    }

    /// The next fencing token after `last`. A name with no known last token (a new file, or
    /// one repaired from garbage) starts from the system clock in microseconds, which is
    /// above every token that name can have had, so tokens rise even when lock files are
    /// deleted.
    fn next_token(self, last: Option<u64>) -> FencingToken {
        let next = match last {
            Some(t) => t.saturating_add(1),
            None => self.micros.max(1),
        };
        FencingToken::new(next).expect("positive")
    }
}

/// The live lease on the name, if any.
fn live<'a>(txn: &'a Txn<'_>) -> Result<Option<&'a Record>, Error> {
    let now = txn.now.ms;
    Ok(txn.record()?.filter(|r| r.live_owner(now).is_some()))
}

fn lease(name: &LockName, owner: &OwnerId, token: u64, ttl: Ttl) -> Lease {
    Lease {
        name: name.clone(),
        owner: owner.clone(),
        token: FencingToken::new(token).expect("checked when parsed"),
        ttl,
        kind: Kind::Exclusive,
    }
}

fn holder(record: &Record, now: Now) -> Holder {
    Holder {
        owner: record.owner_id().expect("a live record has an owner"),
        token: FencingToken::new(record.token).expect("checked when parsed"),
        // Both ends rounded up, as the expiry is: never more than the ttl just granted.
        expires_in: Some(Duration::from_millis(
            record.expires_ms.saturating_sub(now.micros.div_ceil(1000)),
        )),
        kind: Kind::Exclusive,
    }
}

/// Try acquire: the lease when the name is open (a new token) or already `owner`'s (the same
/// token, its tie kept), else who holds it.
pub(crate) fn try_acquire(
    txn: &mut Txn<'_>,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<AcquireOutcome, Error> {
    let now = txn.now;
    let (token, tied) = match txn.record()? {
        Some(r) if r.live_owner(now.ms).is_some_and(|o| o != owner.as_str()) => {
            return Ok(AcquireOutcome::Held(holder(r, now)));
        }
        Some(r) if r.live_owner(now.ms).is_some() => (r.token, r.tied),
        Some(r) => (now.next_token(Some(r.token)).get(), false),
        None => (now.next_token(None).get(), false),
    };
    txn.write(Record::held(owner, token, now.expiry(ttl)).with_tie(tied));
    Ok(AcquireOutcome::Acquired(lease(name, owner, token, ttl)))
}

/// Try acquire in line: `owner` keeps its place for `patience_ms`; it is granted the name
/// when open with no place ahead, or told it stands behind.
pub(crate) fn try_acquire_in_line(
    txn: &mut Txn<'_>,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
    patience_ms: u64,
) -> Result<InLineOutcome, Error> {
    let now = txn.now.ms;
    let open = live(txn)?.is_none();
    // A place kept for over half the patience already is not rewritten: a waiter that asks
    // often (every 200 ms) mostly only reads the line.
    let line = txn.line()?;
    let first = line.keep(
        owner.as_str(),
        now,
        now.saturating_add(patience_ms / 2),
        now.saturating_add(patience_ms),
    );
    if open && !first {
        let until = line.first_kept_until().expect("someone is first");
        let first_kept_for = Duration::from_millis(until.saturating_sub(now));
        return Ok(InLineOutcome::Behind { first_kept_for });
    }
    let outcome = try_acquire(txn, name, owner, ttl)?;
    if matches!(outcome, AcquireOutcome::Acquired(_)) {
        txn.line()?.leave(owner.as_str());
    }
    Ok(outcome.into())
}

/// Leave the line: the waiters behind `owner`'s place, who watch the lock file, look again.
pub(crate) fn leave_line(txn: &mut Txn<'_>, owner: &OwnerId) -> Result<(), Error> {
    if txn.line()?.leave(owner.as_str()) {
        txn.rewrite();
    }
    Ok(())
}

/// Renew: `owner`'s live lease runs until now + `ttl`, its token and tie kept.
pub(crate) fn renew(
    txn: &mut Txn<'_>,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    let now = txn.now;
    let Some(r) = live(txn)?.filter(|r| r.owner.as_deref() == Some(owner.as_str())) else {
        return Ok(RenewOutcome::Lost);
    };
    let (token, tied) = (r.token, r.tied);
    txn.write(Record::held(owner, token, now.expiry(ttl)).with_tie(tied));
    Ok(RenewOutcome::Renewed(lease(name, owner, token, ttl)))
}

/// Release: `owner`'s live lease ends; the name is open at once.
pub(crate) fn release(txn: &mut Txn<'_>, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
    let Some(r) = live(txn)? else {
        return Ok(ReleaseOutcome::NotLocked);
    };
    if r.owner.as_deref() != Some(owner.as_str()) {
        return Ok(ReleaseOutcome::NotOwner);
    }
    let open = Record::open(r.token);
    txn.write(open);
    Ok(ReleaseOutcome::Released)
}

/// Force release: whoever's live lease ends. Foreign or garbled content is repaired as an
/// open lock whose tokens continue from the system clock.
pub(crate) fn force_release(txn: &mut Txn<'_>) -> Result<ReleaseOutcome, Error> {
    if txn.is_corrupt() {
        let floor = txn.now.next_token(None).get() - 1;
        txn.write(Record::open(floor));
        return Ok(ReleaseOutcome::Released);
    }
    let Some(r) = live(txn)? else {
        return Ok(ReleaseOutcome::NotLocked);
    };
    let open = Record::open(r.token);
    txn.write(open);
    Ok(ReleaseOutcome::Released)
}

/// Inspect: who holds the name, if anyone.
pub(crate) fn inspect(txn: &mut Txn<'_>) -> Result<LockState, Error> {
    Ok(match live(txn)? {
        Some(r) => LockState::Locked(Holders::one(holder(r, txn.now))),
        None => LockState::Open,
    })
}

/// Tie: `owner`'s live lease, tied to this process; the record says so from now on.
pub(crate) fn tie(txn: &mut Txn<'_>, owner: &OwnerId) -> Result<Option<HolderTie>, Error> {
    let Some(r) = live(txn)?.filter(|r| r.owner.as_deref() == Some(owner.as_str())) else {
        return Ok(None);
    };
    let r = r.clone();
    let tie = txn.tie(r.token)?;
    if !r.tied {
        txn.write(r.with_tie(true));
    }
    Ok(Some(tie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ends_no_earlier_than_now_plus_ttl() {
        let ttl = Ttl::from_millis(250).unwrap();
        // (now in µs, the end in ms): exact milliseconds stay, any fraction rounds up.
        for (micros, end) in [(1_000, 251), (1_001, 252), (1_999, 252), (0, 250)] {
            let now = Now {
                ms: micros / 1000,
                micros,
            };
            assert_eq!(now.expiry(ttl), end, "now = {micros} µs");
            assert!(now.expiry(ttl) * 1000 >= micros + 250_000);
        }
    }
}

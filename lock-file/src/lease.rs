//! The lease decisions: what each operation answers and writes, given a name's record and
//! line as the transaction engine read them (`transaction.rs`). Nothing here touches a file.
//! Whether a claim fits is `lock_core::raw::admit`'s to say, as on every backend; only live
//! leases are written back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lock_core::raw::{self, Admission, InLineOutcome};
use lock_core::{
    AcquireOutcome, Claim, Error, FencingToken, Holder, HolderTie, Holders, Lease, LockName,
    LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

use crate::record::{Entry, Record};
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

/// The name's last token (`None` for a name never acquired) and its live leases.
fn live(txn: &Txn<'_>) -> Result<(Option<u64>, Vec<Entry>), Error> {
    let now = txn.now.ms;
    Ok(match txn.record()? {
        Some(r) => (Some(r.last), r.live(now).cloned().collect()),
        None => (None, Vec::new()),
    })
}

/// Writes `leases` (live ones) with the last token `last`.
fn write(txn: &mut Txn<'_>, last: Option<u64>, leases: Vec<Entry>) {
    let last = leases
        .iter()
        .map(|l| l.token)
        .fold(last.unwrap_or(0), u64::max);
    txn.write(Record { last, leases });
}

fn lease(name: &LockName, entry: &Entry, ttl: Ttl) -> Lease {
    Lease {
        name: name.clone(),
        owner: entry.owner_id(),
        token: FencingToken::new(entry.token).expect("checked when parsed"),
        ttl,
        kind: entry.kind,
    }
}

fn holder(entry: &Entry, now: Now) -> Holder {
    Holder {
        owner: entry.owner_id(),
        token: FencingToken::new(entry.token).expect("checked when parsed"),
        // Both ends rounded up, as the expiry is: never more than the ttl just granted.
        expires_in: Some(Duration::from_millis(
            entry.expires_ms.saturating_sub(now.micros.div_ceil(1000)),
        )),
        kind: entry.kind,
    }
}

fn holders(leases: &[Entry], now: Now) -> Option<Holders> {
    Holders::new(leases.iter().map(|l| holder(l, now)).collect())
}

/// What a claim came to: an answer, or room that the places ahead in line need first.
enum Decided {
    Done(AcquireOutcome),
    Behind,
}

/// Decides `claim` with `ahead` of the line's weight before it (`raw::admit`), and writes the
/// grant when it fits: the owner's own lease of the same kind again (same token, its tie kept,
/// expiry moved), or a new lease with the next token beside the live ones.
fn decide(txn: &mut Txn<'_>, claim: Claim<'_>, ahead: u64) -> Result<Decided, Error> {
    let now = txn.now;
    let (last, mut leases) = live(txn)?;
    let admission = raw::admit(
        leases.iter().map(|l| (l.owner.as_str(), l.kind)),
        claim.owner.as_str(),
        claim.kind,
        ahead,
    );
    let token = match admission {
        Admission::Again(i) => {
            leases[i].expires_ms = now.expiry(claim.ttl);
            leases[i].token
        }
        Admission::Grant => {
            let token = now.next_token(last).get();
            leases.push(Entry {
                owner: claim.owner.as_str().to_owned(),
                token,
                expires_ms: now.expiry(claim.ttl),
                tied: false,
                kind: claim.kind,
            });
            token
        }
        Admission::Full => {
            let holders = holders(&leases, now).expect("full means held");
            return Ok(Decided::Done(AcquireOutcome::Held(
                holders.next_to_expire().clone(),
            )));
        }
        Admission::Behind => return Ok(Decided::Behind),
        Admission::Mismatch(held_as) => return Err(raw::mismatch(claim, held_as)),
    };
    write(txn, last, leases);
    let token = FencingToken::new(token).expect("tokens are positive");
    Ok(Decided::Done(AcquireOutcome::Acquired(claim.lease(token))))
}

/// Try acquire: a lease when the name has room for the claim (a new token) or the owner holds
/// one of the same kind already (the same token, its tie kept), else who holds it.
pub(crate) fn try_acquire(txn: &mut Txn<'_>, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
    match decide(txn, claim, 0)? {
        Decided::Done(outcome) => Ok(outcome),
        Decided::Behind => unreachable!("nothing is ahead of a plain try"),
    }
}

/// Try acquire in line: `owner` keeps its place, with its claim's kind, for `patience_ms`; it
/// is granted a lease when the name has room for its claim and for the places ahead, or told
/// it stands behind. A kind that does not match changes nothing (an error writes nothing).
pub(crate) fn try_acquire_in_line(
    txn: &mut Txn<'_>,
    claim: Claim<'_>,
    patience_ms: u64,
) -> Result<InLineOutcome, Error> {
    let now = txn.now.ms;
    // A place kept for over half the patience already is not rewritten: a waiter that asks
    // often (every 200 ms) mostly only reads the line.
    let ahead = txn.line()?.keep(
        claim.owner.as_str(),
        claim.kind,
        now,
        now.saturating_add(patience_ms / 2),
        now.saturating_add(patience_ms),
    );
    match decide(txn, claim, ahead)? {
        Decided::Behind => {
            let until = txn.line()?.first_kept_until().expect("someone is ahead");
            let first_kept_for = Duration::from_millis(until.saturating_sub(now));
            Ok(InLineOutcome::Behind { first_kept_for })
        }
        Decided::Done(outcome) => {
            if matches!(outcome, AcquireOutcome::Acquired(_)) {
                txn.line()?.leave(claim.owner.as_str());
            }
            Ok(outcome.into())
        }
    }
}

/// Leave the line: the waiters behind `owner`'s place, who watch the lock file, look again.
pub(crate) fn leave_line(txn: &mut Txn<'_>, owner: &OwnerId) -> Result<(), Error> {
    if txn.line()?.leave(owner.as_str()) {
        txn.rewrite();
    }
    Ok(())
}

/// Renew: `owner`'s live lease runs until now + `ttl`, its token, kind and tie kept; the other
/// leases untouched.
pub(crate) fn renew(
    txn: &mut Txn<'_>,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
) -> Result<RenewOutcome, Error> {
    let now = txn.now;
    let (last, mut leases) = live(txn)?;
    let Some(i) = leases.iter().position(|l| l.owner == owner.as_str()) else {
        return Ok(RenewOutcome::Lost);
    };
    leases[i].expires_ms = now.expiry(ttl);
    let renewed = lease(name, &leases[i], ttl);
    write(txn, last, leases);
    Ok(RenewOutcome::Renewed(renewed))
}

/// Release: `owner`'s live lease ends at once; the other leases stay.
pub(crate) fn release(txn: &mut Txn<'_>, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
    let (last, mut leases) = live(txn)?;
    if leases.is_empty() {
        return Ok(ReleaseOutcome::NotLocked);
    }
    let before = leases.len();
    leases.retain(|l| l.owner != owner.as_str());
    if leases.len() == before {
        return Ok(ReleaseOutcome::NotOwner);
    }
    write(txn, last, leases);
    Ok(ReleaseOutcome::Released)
}

/// Force release: every live lease ends. Foreign or garbled content is repaired as an open
/// lock whose tokens continue from the system clock.
pub(crate) fn force_release(txn: &mut Txn<'_>) -> Result<ReleaseOutcome, Error> {
    if txn.is_corrupt() {
        let floor = txn.now.next_token(None).get() - 1;
        txn.write(Record::open(floor));
        return Ok(ReleaseOutcome::Released);
    }
    let (last, leases) = live(txn)?;
    if leases.is_empty() {
        return Ok(ReleaseOutcome::NotLocked);
    }
    write(txn, last, Vec::new());
    Ok(ReleaseOutcome::Released)
}

/// Inspect: every live holder, with its kind.
pub(crate) fn inspect(txn: &mut Txn<'_>) -> Result<LockState, Error> {
    let (_, leases) = live(txn)?;
    Ok(match holders(&leases, txn.now) {
        Some(h) => LockState::Locked(h),
        None => LockState::Open,
    })
}

/// Tie: `owner`'s live lease, tied to this process; the record says so from now on.
pub(crate) fn tie(txn: &mut Txn<'_>, owner: &OwnerId) -> Result<Option<HolderTie>, Error> {
    let (last, mut leases) = live(txn)?;
    let Some(i) = leases.iter().position(|l| l.owner == owner.as_str()) else {
        return Ok(None);
    };
    let tie = txn.tie(leases[i].token)?;
    if !leases[i].tied {
        leases[i].tied = true;
        write(txn, last, leases);
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

//! [`MemoryLock`]: the in-memory reference backend.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::raw::{self, Admission, ChangeFuture, ChangeHub, InLineOutcome};
use crate::{
    AcquireOutcome, Capabilities, Claim, Error, FencingToken, Holder, Holders, Kind, Lease, Lock,
    LockName, LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

/// Locks in this process's memory: the reference model the conformance suite is checked
/// against, and a stand-in for tests of code that uses a [`Lock`].
///
/// Every operation runs under one mutex, so each is atomic. Expiry uses the monotonic clock;
/// tokens count up from 1 per name and live as long as the value (there is no restart to
/// survive). Waiters stand in a line per name (first come, first served). Every kind is
/// offered: exclusive, shared, permits. Handles share locks by sharing one `Arc<MemoryLock>`.
#[derive(Debug, Default)]
pub struct MemoryLock {
    names: Mutex<HashMap<LockName, Slot>>,
    changes: ChangeHub,
}

#[derive(Debug, Default)]
struct Slot {
    last_token: u64,
    /// The leases, live or lapsed (lapsed ones are dropped as the slot is next changed).
    leases: Vec<Live>,
    /// Waiters in line, first come first: each owner, the instant its place lapses, and the
    /// kind it asks for.
    line: VecDeque<Place>,
}

#[derive(Debug)]
struct Live {
    owner: OwnerId,
    token: FencingToken,
    expires_at: Instant,
    kind: Kind,
}

#[derive(Debug)]
struct Place {
    owner: OwnerId,
    until: Instant,
    kind: Kind,
}

impl Slot {
    /// Drops the leases and places that lapsed by `now`.
    fn prune(&mut self, now: Instant) {
        self.leases.retain(|l| l.expires_at > now);
        self.line.retain(|p| p.until > now);
    }

    /// The owners at the front of the line that the room free at `now` can serve: whose turn
    /// a release or a leave is.
    fn served(&mut self, now: Instant) -> Vec<String> {
        self.prune(now);
        let n = raw::servable(
            self.leases.iter().map(|l| l.kind),
            self.line.iter().map(|p| p.kind),
        );
        self.line
            .iter()
            .take(n)
            .map(|p| p.owner.as_str().to_owned())
            .collect()
    }

    fn holder(l: &Live, now: Instant) -> Holder {
        Holder {
            owner: l.owner.clone(),
            token: l.token,
            expires_in: Some(l.expires_at - now),
            kind: l.kind,
        }
    }

    fn holders(&self, now: Instant) -> Option<Holders> {
        Holders::new(
            self.leases
                .iter()
                .filter(|l| l.expires_at > now)
                .map(|l| Self::holder(l, now))
                .collect(),
        )
    }

    /// Decides `claim` with `ahead` of the line's weight before it, and grants it when it fits.
    fn try_grant(&mut self, claim: Claim<'_>, ahead: u64, now: Instant) -> Result<Granted, Error> {
        self.prune(now);
        let leases = self.leases.iter().map(|l| (l.owner.as_str(), l.kind));
        let token = match raw::admit(leases, claim.owner.as_str(), claim.kind, ahead) {
            Admission::Again(i) => {
                let lease = &mut self.leases[i];
                lease.expires_at = now + claim.ttl.duration();
                lease.token
            }
            Admission::Grant => {
                self.last_token += 1;
                let token = FencingToken::new(self.last_token).expect("counts up from 1");
                self.leases.push(Live {
                    owner: claim.owner.clone(),
                    token,
                    expires_at: now + claim.ttl.duration(),
                    kind: claim.kind,
                });
                token
            }
            Admission::Full => {
                let holders = self.holders(now).expect("full means held");
                return Ok(Granted::No(AcquireOutcome::Held(
                    holders.next_to_expire().clone(),
                )));
            }
            Admission::Behind => return Ok(Granted::Behind),
            Admission::Mismatch(held_as) => return Err(raw::mismatch(claim, held_as)),
        };
        Ok(Granted::No(AcquireOutcome::Acquired(claim.lease(token))))
    }
}

/// What a try decided: an answer, or room that the line ahead needs first.
enum Granted {
    No(AcquireOutcome),
    Behind,
}

impl MemoryLock {
    /// An empty set of locks.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_slot<T>(&self, name: &LockName, f: impl FnOnce(&mut Slot, Instant) -> T) -> T {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        f(names.entry(name.clone()).or_default(), Instant::now())
    }

    fn wake(&self, name: &LockName, served: &[String]) {
        self.changes
            .notify_turns(name.as_str(), served.iter().map(String::as_str));
    }
}

#[async_trait]
impl Lock for MemoryLock {
    fn backend_name(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: true,
            owner_on_any_handle: true,
            fair_line: true,
            holder_tie: false,
            permits: true,
            shared: true,
            ..Capabilities::default()
        }
    }

    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        self.with_slot(claim.name, |slot, now| {
            match slot.try_grant(claim, 0, now)? {
                Granted::No(outcome) => Ok(outcome),
                Granted::Behind => unreachable!("nothing is ahead of a plain try"),
            }
        })
    }

    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        self.with_slot(claim.name, |slot, now| {
            slot.prune(now);
            let leases = slot.leases.iter().map(|l| (l.owner.as_str(), l.kind));
            if let Admission::Mismatch(held_as) =
                raw::admit(leases, claim.owner.as_str(), claim.kind, 0)
            {
                return Err(raw::mismatch(claim, held_as)); // no place taken
            }
            let until = now + Duration::from_millis(raw::patience_millis(patience));
            match slot.line.iter_mut().find(|p| &p.owner == claim.owner) {
                Some(place) => {
                    place.until = until;
                    place.kind = claim.kind;
                }
                None => slot.line.push_back(Place {
                    owner: claim.owner.clone(),
                    until,
                    kind: claim.kind,
                }),
            }
            let ahead: u64 = slot
                .line
                .iter()
                .take_while(|p| &p.owner != claim.owner)
                .map(|p| u64::from(p.kind.weight()))
                .sum();
            let outcome = match slot.try_grant(claim, ahead, now)? {
                Granted::Behind => {
                    let first = slot.line.front().expect("someone is ahead");
                    return Ok(InLineOutcome::Behind {
                        first_kept_for: first.until - now,
                    });
                }
                Granted::No(outcome) => outcome,
            };
            if matches!(outcome, AcquireOutcome::Acquired(_)) {
                slot.line.retain(|p| &p.owner != claim.owner);
            }
            Ok(outcome.into())
        })
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        let served = self.with_slot(name, |slot, now| {
            let before = slot.line.len();
            slot.line.retain(|p| &p.owner != owner);
            (slot.line.len() < before).then(|| slot.served(now))
        });
        if let Some(served) = served {
            self.wake(name, &served);
        }
        Ok(())
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        Ok(self.with_slot(name, |slot, now| {
            slot.prune(now);
            match slot.leases.iter_mut().find(|l| &l.owner == owner) {
                Some(l) => {
                    l.expires_at = now + ttl.duration();
                    RenewOutcome::Renewed(Lease {
                        name: name.clone(),
                        owner: owner.clone(),
                        token: l.token,
                        ttl,
                        kind: l.kind,
                    })
                }
                None => RenewOutcome::Lost,
            }
        }))
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        let (outcome, served) = self.with_slot(name, |slot, now| {
            slot.prune(now);
            let before = slot.leases.len();
            slot.leases.retain(|l| &l.owner != owner);
            if slot.leases.len() < before {
                (ReleaseOutcome::Released, slot.served(now))
            } else if before > 0 {
                (ReleaseOutcome::NotOwner, Vec::new())
            } else {
                (ReleaseOutcome::NotLocked, Vec::new())
            }
        });
        if outcome == ReleaseOutcome::Released {
            self.wake(name, &served);
        }
        Ok(outcome)
    }

    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        let (outcome, served) = self.with_slot(name, |slot, now| {
            slot.prune(now);
            if slot.leases.is_empty() {
                (ReleaseOutcome::NotLocked, Vec::new())
            } else {
                slot.leases.clear();
                (ReleaseOutcome::Released, slot.served(now))
            }
        });
        if outcome == ReleaseOutcome::Released {
            self.wake(name, &served);
        }
        Ok(outcome)
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        Ok(self.with_slot(name, |slot, now| match slot.holders(now) {
            Some(h) => LockState::Locked(h),
            None => LockState::Open,
        }))
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        Ok(Some(self.changes.subscribe(name.as_str())))
    }

    /// A freed room wakes only the turns of the owners it can serve.
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        Ok(Some(
            self.changes.subscribe_turn(name.as_str(), owner.as_str()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_patience_out_of_bounds_is_taken_as_the_nearest_bound() {
        let lock = MemoryLock::new();
        let name = LockName::new("n").unwrap();
        let ttl = Ttl::from_millis(1_000).unwrap();
        for patience in [Duration::ZERO, Duration::MAX] {
            let got = lock
                .try_acquire_in_line(Claim::new(&name, &OwnerId::random(), ttl), patience)
                .await
                .unwrap();
            assert!(matches!(got, InLineOutcome::Acquired(_)), "{got:?}");
            lock.force_release(&name).await.unwrap();
        }
    }
}

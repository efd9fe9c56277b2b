//! [`MemoryLock`]: the in-memory reference backend.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::raw::{ChangeFuture, ChangeHub, InLineOutcome};
use crate::{
    AcquireOutcome, Capabilities, Error, FencingToken, Holder, Lease, Lock, LockName, LockState,
    OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

/// Locks in this process's memory: the reference model the conformance suite is checked
/// against, and a stand-in for tests of code that uses a [`Lock`].
///
/// Every operation runs under one mutex, so each is atomic. Expiry uses the monotonic clock;
/// tokens count up from 1 per name and live as long as the value (there is no restart to
/// survive). Waiters stand in a line per name (first come, first served). Handles share locks
/// by sharing one `Arc<MemoryLock>`.
#[derive(Debug, Default)]
pub struct MemoryLock {
    names: Mutex<HashMap<LockName, Slot>>,
    changes: ChangeHub,
}

#[derive(Debug, Default)]
struct Slot {
    last_token: u64,
    lease: Option<Live>,
    /// Waiters in line, first come first: each owner and the instant its place lapses.
    line: VecDeque<(OwnerId, Instant)>,
}

#[derive(Debug)]
struct Live {
    owner: OwnerId,
    token: FencingToken,
    expires_at: Instant,
}

impl Slot {
    /// The owner standing first in line at `now`, whose turn an opening is.
    fn first(&self, now: Instant) -> Option<String> {
        self.line
            .iter()
            .find(|(_, until)| *until > now)
            .map(|(o, _)| o.as_str().to_owned())
    }

    /// The lease if it is still live at `now`.
    fn live(&self, now: Instant) -> Option<&Live> {
        self.lease.as_ref().filter(|l| l.expires_at > now)
    }

    /// Grants the lease to `owner` unless another owner's is live.
    fn try_grant(
        &mut self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
        now: Instant,
    ) -> AcquireOutcome {
        let token = match self.live(now) {
            Some(l) if &l.owner != owner => {
                return AcquireOutcome::Held(self.holder(now).expect("live"));
            }
            Some(l) => l.token,
            None => {
                self.last_token += 1;
                FencingToken::new(self.last_token).expect("counts up from 1")
            }
        };
        self.lease = Some(Live {
            owner: owner.clone(),
            token,
            expires_at: now + ttl.duration(),
        });
        AcquireOutcome::Acquired(Lease {
            name: name.clone(),
            owner: owner.clone(),
            token,
            ttl,
        })
    }

    fn holder(&self, now: Instant) -> Option<Holder> {
        self.live(now).map(|l| Holder {
            owner: l.owner.clone(),
            token: l.token,
            expires_in: Some(l.expires_at - now),
        })
    }
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
}

#[async_trait]
impl Lock for MemoryLock {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: true,
            owner_on_any_handle: true,
            fair_line: true,
            holder_tie: false,
            ..Capabilities::default()
        }
    }

    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error> {
        Ok(self.with_slot(name, |slot, now| slot.try_grant(name, owner, ttl, now)))
    }

    async fn try_acquire_in_line(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        Ok(self.with_slot(name, |slot, now| {
            slot.line.retain(|(_, until)| *until > now);
            let until = now + Duration::from_millis(crate::raw::patience_millis(patience));
            match slot.line.iter_mut().find(|(o, _)| o == owner) {
                Some(place) => place.1 = until,
                None => slot.line.push_back((owner.clone(), until)),
            }
            let first = slot.line.front().is_some_and(|(o, _)| o == owner);
            if slot.live(now).is_none() && !first {
                let (_, until) = slot.line.front().expect("someone is first");
                return InLineOutcome::Behind {
                    first_kept_for: *until - now,
                };
            }
            let outcome = slot.try_grant(name, owner, ttl, now);
            if matches!(outcome, AcquireOutcome::Acquired(_)) {
                slot.line.retain(|(o, _)| o != owner);
            }
            outcome.into()
        }))
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        let left = self.with_slot(name, |slot, now| {
            let before = slot.line.len();
            slot.line.retain(|(o, _)| o != owner);
            (slot.line.len() < before).then(|| slot.first(now))
        });
        if let Some(first) = left {
            self.changes.notify_turn(name.as_str(), first.as_deref());
        }
        Ok(())
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        Ok(self.with_slot(name, |slot, now| match slot.live(now) {
            Some(l) if &l.owner == owner => {
                let token = l.token;
                slot.lease.as_mut().expect("live").expires_at = now + ttl.duration();
                RenewOutcome::Renewed(Lease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token,
                    ttl,
                })
            }
            _ => RenewOutcome::Lost,
        }))
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        let (outcome, first) = self.with_slot(name, |slot, now| match slot.live(now) {
            Some(l) if &l.owner == owner => {
                slot.lease = None;
                (ReleaseOutcome::Released, slot.first(now))
            }
            Some(_) => (ReleaseOutcome::NotOwner, None),
            None => (ReleaseOutcome::NotLocked, None),
        });
        if outcome == ReleaseOutcome::Released {
            self.changes.notify_turn(name.as_str(), first.as_deref());
        }
        Ok(outcome)
    }

    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        let (outcome, first) = self.with_slot(name, |slot, now| match slot.live(now) {
            Some(_) => {
                slot.lease = None;
                (ReleaseOutcome::Released, slot.first(now))
            }
            None => (ReleaseOutcome::NotLocked, None),
        });
        if outcome == ReleaseOutcome::Released {
            self.changes.notify_turn(name.as_str(), first.as_deref());
        }
        Ok(outcome)
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        Ok(self.with_slot(name, |slot, now| match slot.holder(now) {
            Some(h) => LockState::Locked(h),
            None => LockState::Open,
        }))
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        Ok(Some(self.changes.subscribe(name.as_str())))
    }

    /// An opening wakes only the turn of the owner first in line.
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
                .try_acquire_in_line(&name, &OwnerId::random(), ttl, patience)
                .await
                .unwrap();
            assert!(matches!(got, InLineOutcome::Acquired(_)), "{got:?}");
            lock.force_release(&name).await.unwrap();
        }
    }
}

//! [`MemoryLock`]: the in-memory reference backend.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use crate::{
    AcquireOutcome, Capabilities, ChangeFuture, ChangeHub, Error, FencingToken, Holder, Lease,
    Lock, LockName, LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

/// Locks in this process's memory: the reference model the conformance suite is checked
/// against, and a stand-in for tests of code that uses a [`Lock`].
///
/// Every operation runs under one mutex, so each is atomic. Expiry uses the monotonic clock;
/// tokens count up from 1 per name and live as long as the value (there is no restart to
/// survive). Handles share locks by sharing one `Arc<MemoryLock>`.
#[derive(Debug, Default)]
pub struct MemoryLock {
    names: Mutex<HashMap<LockName, Slot>>,
    changes: ChangeHub,
}

#[derive(Debug, Default)]
struct Slot {
    last_token: u64,
    lease: Option<Live>,
}

#[derive(Debug)]
struct Live {
    owner: OwnerId,
    token: FencingToken,
    expires_at: Instant,
}

impl Slot {
    /// The lease if it is still live at `now`.
    fn live(&self, now: Instant) -> Option<&Live> {
        self.lease.as_ref().filter(|l| l.expires_at > now)
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
            ..Capabilities::default()
        }
    }

    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error> {
        Ok(self.with_slot(name, |slot, now| {
            let token = match slot.live(now) {
                Some(l) if &l.owner != owner => {
                    return AcquireOutcome::Held(slot.holder(now).expect("live"));
                }
                Some(l) => l.token,
                None => {
                    slot.last_token += 1;
                    FencingToken::new(slot.last_token).expect("counts up from 1")
                }
            };
            slot.lease = Some(Live {
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
        }))
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
        let outcome = self.with_slot(name, |slot, now| match slot.live(now) {
            Some(l) if &l.owner == owner => {
                slot.lease = None;
                ReleaseOutcome::Released
            }
            Some(_) => ReleaseOutcome::NotOwner,
            None => ReleaseOutcome::NotLocked,
        });
        if outcome == ReleaseOutcome::Released {
            self.changes.notify(name.as_str());
        }
        Ok(outcome)
    }

    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        let outcome = self.with_slot(name, |slot, now| match slot.live(now) {
            Some(_) => {
                slot.lease = None;
                ReleaseOutcome::Released
            }
            None => ReleaseOutcome::NotLocked,
        });
        if outcome == ReleaseOutcome::Released {
            self.changes.notify(name.as_str());
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
}

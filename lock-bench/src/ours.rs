//! Our side of each uncontended comparison, the same for every backend: the `Lock` trait's
//! try acquire + release on a handle from `lock::connect`, and the `Guard` a user holds
//! (acquire without waiting, renewer started, release).

use std::sync::Arc;

use lock::{
    AcquireOptions, AcquireOutcome, Acquisition, Claim, Guard, Kind, Lock, LockName, OwnerId,
    ReleaseOutcome, Ttl, Wait,
};

use crate::Res;
use crate::rounds::{BoxFuture, Side};

/// The ttl of uncontended leases: long enough that nothing expires or renews mid-cycle.
const TTL_MS: u64 = 30_000;

/// `try_acquire` + `release` on one handle, one name, one owner, of one kind.
pub struct TraitCycle {
    lock: Arc<dyn Lock>,
    name: LockName,
    owner: OwnerId,
    ttl: Ttl,
    kind: Kind,
}

impl TraitCycle {
    /// Cycles on `name` through `lock`, exclusive leases.
    pub fn new(lock: Arc<dyn Lock>, name: &str) -> Res<Self> {
        Self::with_kind(lock, name, Kind::Exclusive)
    }

    /// Cycles on `name` through `lock`, leases of `kind` (a permit of a semaphore, say).
    pub fn with_kind(lock: Arc<dyn Lock>, name: &str, kind: Kind) -> Res<Self> {
        Ok(Self {
            lock,
            name: LockName::new(name)?,
            owner: OwnerId::random(),
            ttl: Ttl::from_millis(TTL_MS)?,
            kind,
        })
    }
}

impl Side for TraitCycle {
    fn label(&self) -> String {
        match self.kind {
            Kind::Exclusive => "ours: try_acquire + release".into(),
            Kind::Permit(n) => format!("ours: a permit of {n}, try_acquire + release"),
            kind => format!("ours: a {} lease, try_acquire + release", kind.as_str()),
        }
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            match self
                .lock
                .try_acquire(Claim::new(&self.name, &self.owner, self.ttl).with_kind(self.kind))
                .await?
            {
                AcquireOutcome::Acquired(_) => {}
                other => return Err(format!("uncontended try_acquire answered {other:?}").into()),
            }
            match self.lock.release(&self.name, &self.owner).await? {
                ReleaseOutcome::Released => Ok(()),
                other => Err(format!("uncontended release answered {other:?}").into()),
            }
        })
    }
}

/// `Guard::acquire` (no wait) + `Guard::release`: the trait cycle plus starting and stopping
/// the renewer task, and, where the backend ties leases to their holders (files), the tie.
pub struct GuardCycle {
    lock: Arc<dyn Lock>,
    name: LockName,
    options: AcquireOptions,
    tied: bool,
}

impl GuardCycle {
    /// Cycles on `name` through `lock`, as a user's guard does by default.
    pub fn new(lock: Arc<dyn Lock>, name: &str) -> Res<Self> {
        Self::with_tie(lock, name, true)
    }

    /// Cycles on `name` through `lock` without tying the lease ([`AcquireOptions::tie`]).
    pub fn untied(lock: Arc<dyn Lock>, name: &str) -> Res<Self> {
        Self::with_tie(lock, name, false)
    }

    fn with_tie(lock: Arc<dyn Lock>, name: &str, tied: bool) -> Res<Self> {
        Ok(Self {
            lock,
            name: LockName::new(name)?,
            options: AcquireOptions::new()
                .ttl(Ttl::from_millis(TTL_MS)?)
                .wait(Wait::No)
                .owner(OwnerId::random())
                .tie(tied),
            tied,
        })
    }
}

impl Side for GuardCycle {
    fn label(&self) -> String {
        if self.tied {
            "ours: Guard acquire + release".into()
        } else {
            "ours: Guard acquire + release, untied".into()
        }
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            let acquisition =
                Guard::acquire(self.lock.clone(), self.name.clone(), self.options.clone()).await?;
            let Acquisition::Acquired(guard) = acquisition else {
                return Err(format!("uncontended Guard::acquire answered {acquisition:?}").into());
            };
            match guard.release().await? {
                ReleaseOutcome::Released => Ok(()),
                other => Err(format!("uncontended release answered {other:?}").into()),
            }
        })
    }
}

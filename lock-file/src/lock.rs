//! `impl Lock for FileLock`: each operation is its lease decision run as one transaction.

use std::time::Duration;

use async_trait::async_trait;
use lock_core::Operation;
use lock_core::raw::{ChangeFuture, InLineOutcome};
use lock_core::{
    AcquireOutcome, Capabilities, Claim, Error, HolderTie, Kind, Lock, LockName, LockState,
    OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

use crate::FileLock;

/// What a decision needs of a claim, owned, to take to the blocking pool if need be.
fn owned(claim: Claim<'_>) -> (LockName, OwnerId, Ttl, Kind) {
    (
        claim.name.clone(),
        claim.owner.clone(),
        claim.ttl,
        claim.kind,
    )
}
use crate::lease;
use crate::transaction::Access;

#[async_trait]
impl Lock for FileLock {
    fn backend_name(&self) -> &'static str {
        "file"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: true,
            cross_process: true,
            owner_on_any_handle: true,
            fair_line: true,
            holder_tie: true,
            permits: true,
            shared: true,
        }
    }

    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        let (n, o, ttl, kind) = owned(claim);
        self.transact(
            Operation::TryAcquire,
            claim.name,
            Access::Create,
            move |t| lease::try_acquire(t, Claim::new(&n, &o, ttl).with_kind(kind)),
        )
        .await
    }

    /// The line is kept in `<name>.line` beside the lock file, under the lock file's `flock`.
    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        let (n, o, ttl, kind) = owned(claim);
        let patience = lock_core::raw::patience_millis(patience);
        self.transact(
            Operation::TryAcquireInLine,
            claim.name,
            Access::Create,
            move |t| {
                lease::try_acquire_in_line(t, Claim::new(&n, &o, ttl).with_kind(kind), patience)
            },
        )
        .await
    }

    /// A place that went rewrites the lock file as it was, so that the waiters behind it,
    /// who watch that file, look again at once.
    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        let o = owner.clone();
        self.transact(Operation::LeaveLine, name, Access::Write, move |t| {
            lease::leave_line(t, &o)
        })
        .await
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        let (n, o) = (name.clone(), owner.clone());
        self.transact(Operation::Renew, name, Access::Write, move |t| {
            lease::renew(t, &n, &o, ttl)
        })
        .await
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        let o = owner.clone();
        self.transact(Operation::Release, name, Access::Write, move |t| {
            lease::release(t, &o)
        })
        .await
    }

    /// Also repairs a lock file with foreign or garbled content: it is rewritten as an open
    /// lock whose tokens continue from the system clock, and the answer is
    /// [`ReleaseOutcome::Released`].
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        self.transact(
            Operation::ForceRelease,
            name,
            Access::Write,
            lease::force_release,
        )
        .await
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        self.transact(Operation::Inspect, name, Access::Read, lease::inspect)
            .await
    }

    /// The tie is an open-file-description lock on the lock file (see the crate's docs).
    async fn tie(&self, name: &LockName, owner: &OwnerId) -> Result<Option<HolderTie>, Error> {
        let o = owner.clone();
        self.transact(Operation::Tie, name, Access::Write, move |t| {
            lease::tie(t, &o)
        })
        .await
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        Ok(self.watcher().subscribe(&self.path_of(name)))
    }

    /// Room freed wakes only the turns of the owners at the front of the line file that it
    /// can serve (`raw::servable`; see the crate's docs on waking).
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        Ok(self
            .watcher()
            .subscribe_turn(&self.path_of(name), owner.as_str()))
    }
}

//! The [`Lock`] trait: the five operations every backend implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;

use crate::{
    AcquireOutcome, Capabilities, Error, LockName, LockState, OwnerId, ReleaseOutcome,
    RenewOutcome, Ttl,
};

/// A future that completes when a watched name may have changed (see [`Lock::watch`]).
pub type ChangeFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A lock backend: five atomic operations on named leases.
///
/// Dyn-compatible: share one `Arc<dyn Lock>` across tasks. Every operation is atomic on the
/// backend, with no read-then-write window in which another client can slip in; racing try
/// acquires on an open name have exactly one winner. Inputs are the checked types
/// ([`LockName`], [`OwnerId`], [`Ttl`]), so bad input is refused before a backend is touched.
///
/// Most code does not call these directly but goes through [`Guard::acquire`](crate::Guard::acquire)
/// or [`acquire`](crate::acquire), which add waiting and renewal. A new backend proves it keeps
/// this contract with one line: `conformance_tests::suite!(…)`.
#[async_trait]
pub trait Lock: Send + Sync + fmt::Debug {
    /// What this backend offers beyond the five operations.
    fn capabilities(&self) -> Capabilities;

    /// Takes the lease on `name` for `owner` if no one else holds it [seed: `lock`].
    ///
    /// # Behavior
    /// - no live lease: [`AcquireOutcome::Acquired`] with a new fencing token, higher than every
    ///   token handed out for this name before; held by `owner` until now + `ttl`.
    /// - a live lease of another owner: [`AcquireOutcome::Held`] with its owner, token and time
    ///   left; nothing changes.
    /// - a live lease of `owner`: [`AcquireOutcome::Acquired`] with the same token (an
    ///   idempotent retry); expiry moves to now + `ttl`.
    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error>;

    /// Extends `owner`'s live lease on `name` [seed: `update`].
    ///
    /// # Behavior
    /// - a live lease of `owner`: [`RenewOutcome::Renewed`]; expiry moves to now + `ttl`, the
    ///   token stays.
    /// - the lease expired, was released, or is another owner's: [`RenewOutcome::Lost`]; nothing
    ///   changes (never extends another owner's lease, never re-creates one).
    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error>;

    /// Gives up `owner`'s lease on `name` [seed: `clear`].
    ///
    /// # Behavior
    /// - a live lease of `owner`: [`ReleaseOutcome::Released`]; the name is open at once.
    /// - a live lease of another owner: [`ReleaseOutcome::NotOwner`]; nothing changes.
    /// - no live lease: [`ReleaseOutcome::NotLocked`]; nothing changes.
    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error>;

    /// Removes whoever's lease stands on `name` [seed: `clear(force)`].
    ///
    /// # Behavior
    /// - any live lease: [`ReleaseOutcome::Released`]; the name is open at once, and the next
    ///   acquisition gets a higher token.
    /// - no live lease: [`ReleaseOutcome::NotLocked`]; nothing changes.
    ///
    /// Where the stored state is corrupt, a force release is how an operator repairs it.
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error>;

    /// Says who holds `name` [seed: `check`].
    ///
    /// # Behavior
    /// - [`LockState::Open`], or [`LockState::Locked`] with owner, token and time left; nothing
    ///   changes.
    async fn inspect(&self, name: &LockName) -> Result<LockState, Error>;

    /// Starts watching `name`: the returned future completes once the name may have changed
    /// after this call returned (a release, a force release; spurious wake-ups are allowed).
    ///
    /// # Behavior
    /// - a backend with [`Capabilities::wake_on_release`] returns `Some`, and a release made
    ///   after `watch` returned completes the future promptly.
    /// - the default returns `None`: waiters then poll with a short backoff.
    ///
    /// Subscribe first, then try, then await: that order cannot miss a release.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        let _ = name;
        Ok(None)
    }
}

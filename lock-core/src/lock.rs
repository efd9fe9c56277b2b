//! The [`Lock`] trait: the five operations every backend implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;

use crate::raw::InLineOutcome;
use crate::{
    AcquireOutcome, Capabilities, Claim, Error, HolderTie, LockName, LockState, OwnerId,
    ReleaseOutcome, RenewOutcome, Ttl,
};

/// A future that completes when a watched name may have changed (see [`Lock::watch`]).
pub type ChangeFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A lock backend: five atomic operations on named leases, and a line for waiters.
///
/// Dyn-compatible: share one `Arc<dyn Lock>` across tasks. Every operation is atomic on the
/// backend, with no read-then-write window in which another client can slip in; racing try
/// acquires on an open name have exactly one winner (on a semaphore of N, at most N). Inputs
/// are the checked types ([`Claim`], [`LockName`], [`OwnerId`], [`Ttl`]), so bad input is
/// refused before a backend is touched.
///
/// One model covers exclusive locks, reader-writer locks and semaphores: every lease takes a
/// [weight](crate::Kind::weight) of its name's [capacity](crate::Kind::capacity), and the plain exclusive
/// lock is the case of one lease taking all of it. A backend written for the exclusive lock
/// alone keeps working as one: it leaves [`Capabilities::permits`] and
/// [`Capabilities::shared`] false, and is never sent another kind.
///
/// Most code does not call these directly but goes through [`Guard::acquire`](crate::Guard::acquire)
/// or [`acquire`](crate::acquire), which add waiting and renewal. A new backend proves it keeps
/// this contract with one line: `conformance_tests::suite!(…)`.
#[async_trait]
pub trait Lock: Send + Sync + fmt::Debug {
    /// What this backend offers beyond the five operations.
    fn capabilities(&self) -> Capabilities;

    /// A short, stable name of the backend: the `backend` label of the metrics the layer above
    /// the backends records (`memory`, `file`, `redis`, `postgres`; see the README's
    /// "Metrics"). A backend that does not say is `other`.
    fn backend_name(&self) -> &'static str {
        "other"
    }

    /// Takes a lease on `claim.name` for `claim.owner`, of `claim.kind`, if the name has room
    /// for it [seed: `lock`].
    ///
    /// A name has room while the [weights](crate::Kind::weight) of its live leases plus the claim's
    /// stay within its [capacity](crate::Kind::capacity): an exclusive lease alone, shared leases
    /// together, at most N permits of a semaphore. A backend without
    /// [`Capabilities::permits`] or [`Capabilities::shared`] is only sent the claims it
    /// offers ([`Capabilities::check`]); it refuses the others the same way.
    ///
    /// # Behavior
    /// - room for the claim: [`AcquireOutcome::Acquired`] with a new fencing token, higher than
    ///   every token handed out for this name before (over every kind and every permit); held
    ///   by `owner` until now + `ttl`, beside the other live leases.
    /// - no room (another owner's exclusive lease, an exclusive claim beside live shared
    ///   leases, every permit taken): [`AcquireOutcome::Held`] with the holder whose lease
    ///   runs out first; nothing changes.
    /// - a live lease of `owner` of the same kind: [`AcquireOutcome::Acquired`] with the same
    ///   token (an idempotent retry); expiry moves to now + `ttl`.
    /// - a kind that does not match the live leases (another N, permits beside exclusive or
    ///   shared leases, or `owner`'s own lease of another kind):
    ///   [`InvalidInput::KindMismatch`](crate::InvalidInput::KindMismatch) naming the kind in
    ///   force; nothing changes.
    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error>;

    /// Takes a lease as [`try_acquire`](Lock::try_acquire) does, for a waiter standing in
    /// the name's line: first come, first served.
    ///
    /// What a waiting acquisition ([`acquire`](crate::acquire), [`Guard::acquire`](crate::Guard::acquire)
    /// with a [`Wait`](crate::Wait) other than `No`) calls on a backend with
    /// [`Capabilities::fair_line`]. A waiter keeps its place by asking again within `patience`;
    /// one that stops asking (it gave up, crashed, or was cut off) loses its place when its
    /// patience runs out, so a dead waiter holds up the waiters behind it by at most `patience`
    /// (counted in whole milliseconds, from 1 ms to a year: values outside are taken as the
    /// nearest bound).
    ///
    /// # Behavior
    /// - `owner` without a place (or with one that lapsed): takes one at the back of the line,
    ///   with its claim's kind. Every call keeps the place until now + `patience` (a backend
    ///   may leave a place kept past now + `patience`/2 as it is, to save a write); a place
    ///   kept for no longer is gone.
    /// - room for the claim and for every place ahead of `owner`'s (their weights added to
    ///   the live leases'): [`InLineOutcome::Acquired`] as [`try_acquire`](Lock::try_acquire)
    ///   would grant it; the place is given up. So a waiting exclusive claim keeps later
    ///   shared ones out, and a waiter that needs more than is free is not overtaken.
    /// - room for the claim, but not also for the places ahead: [`InLineOutcome::Behind`]
    ///   with how long the first place is kept; only `owner`'s place changes.
    /// - no room for the claim: [`InLineOutcome::Held`] with the holder whose lease runs out
    ///   first; only `owner`'s place changes.
    /// - a live lease of `owner` of the same kind: [`InLineOutcome::Acquired`] with the same
    ///   token (an idempotent retry); the place is given up.
    /// - a kind that does not match: the error of [`try_acquire`](Lock::try_acquire); nothing
    ///   changes.
    ///
    /// [`try_acquire`](Lock::try_acquire) does not look at the line: a single try takes room
    /// even while waiters stand in line, as `tryLock` does on Java's fair locks. The default,
    /// for a backend without a line, is `try_acquire`.
    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        let _ = patience;
        Ok(self.try_acquire(claim).await?.into())
    }

    /// Gives up `owner`'s place in line on `name`: what a waiter that stops waiting calls.
    ///
    /// # Behavior
    /// - a place of `owner`: removed; the waiters behind it move up at once.
    /// - no place of `owner`: nothing changes.
    ///
    /// The default, for a backend without a line, does nothing.
    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        let _ = (name, owner);
        Ok(())
    }

    /// Extends `owner`'s live lease on `name` [seed: `update`].
    ///
    /// # Behavior
    /// - a live lease of `owner`: [`RenewOutcome::Renewed`]; expiry moves to now + `ttl`, the
    ///   token and the kind stay, the other holders' leases are untouched.
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
    /// - a live lease of `owner`: [`ReleaseOutcome::Released`]; that lease ends at once (the
    ///   name is open when it was the only one), the other holders' leases are untouched.
    /// - live leases, none of them `owner`'s: [`ReleaseOutcome::NotOwner`]; nothing changes.
    /// - no live lease: [`ReleaseOutcome::NotLocked`]; nothing changes.
    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error>;

    /// Removes every lease that stands on `name` [seed: `clear(force)`].
    ///
    /// # Behavior
    /// - any live lease: [`ReleaseOutcome::Released`]; every live lease ends, the name is open
    ///   at once, and the next acquisition gets a higher token.
    /// - no live lease: [`ReleaseOutcome::NotLocked`]; nothing changes.
    ///
    /// Where the stored state is corrupt, a force release is how an operator repairs it.
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error>;

    /// Says who holds `name` [seed: `check`].
    ///
    /// # Behavior
    /// - [`LockState::Open`], or [`LockState::Locked`] with every holder: owner, token, time
    ///   left and kind (for a semaphore, [`Holders::permits`](crate::Holders::permits) gives N
    ///   and the free count); nothing changes.
    async fn inspect(&self, name: &LockName) -> Result<LockState, Error>;

    /// Ties `owner`'s live lease on `name` to the life of this process and of the processes it
    /// hands the returned [`HolderTie`] to (see there).
    ///
    /// What [`Guard::acquire`](crate::Guard::acquire) calls after a grant on a backend with
    /// [`Capabilities::holder_tie`], so that a holder that crashes frees the name at once.
    ///
    /// # Behavior
    /// - a live lease of `owner`: `Some(tie)`; the lease is unchanged (same token, same
    ///   expiry). While the tie or a copy of it is open, every operation sees the lease as
    ///   before; a second tie of the same lease keeps it too.
    /// - once every copy of every tie of the lease is closed: the lease has ended. Inspect says
    ///   open, the next acquisition takes the name at once with a higher token, `owner`'s
    ///   renewal is lost and its release finds nothing locked.
    /// - a tie does not keep a lease past its expiry: without renewals it lapses at its ttl,
    ///   tie open or not.
    /// - no live lease of `owner`: `None`; nothing changes.
    ///
    /// A re-acquisition or renewal by `owner` keeps the lease tied. The default, for a backend
    /// that cannot tie, is `None`.
    ///
    /// A backend whose leases already end with the handle's connection (Postgres session mode)
    /// may give a tie without [`Capabilities::holder_tie`]: a copy of that connection, which
    /// keeps the lease alive in the processes it is handed to after this one has died, until
    /// the last copy closes. Closing the copies while the handle lives ends nothing there, so
    /// the lines above do not apply, and [`Guard`](crate::Guard) does not ask for it; `lock
    /// run` does, so that its command's supervisor keeps the lease exactly as long as the
    /// command lives.
    async fn tie(&self, name: &LockName, owner: &OwnerId) -> Result<Option<HolderTie>, Error> {
        let _ = (name, owner);
        Ok(None)
    }

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

    /// Starts watching `name` for `owner`'s turn, as a waiter standing in its line: like
    /// [`watch`](Lock::watch), but a backend that knows who stands in the line when room
    /// frees may leave the future pending while the room goes to other owners ahead, so that a
    /// release wakes the waiters it can serve (the first in line, or the first few that fit
    /// a semaphore's free permits or share a reader-writer lock), not every waiter.
    ///
    /// # Behavior
    /// - a backend with [`Capabilities::wake_on_release`] returns `Some`, and a release made
    ///   after `watch_turn` returned, while `owner`'s place stands first (or among the first
    ///   that the freed room can serve), completes the future promptly.
    /// - a waiter leaving the line of an open name (see [`leave_line`](Lock::leave_line)) after
    ///   `watch_turn` returned, while `owner`'s place stands next, completes the future
    ///   promptly.
    /// - the default is [`watch`](Lock::watch).
    ///
    /// A waiter behind another still looks again at least every 200 ms to keep its place, so a
    /// first place that lapses (its waiter gone) costs the next at most that.
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        let _ = owner;
        self.watch(name).await
    }
}

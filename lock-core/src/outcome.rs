//! What each of the five operations answers.

use crate::{Holder, Lease};

/// The answer of [`Lock::try_acquire`](crate::Lock::try_acquire).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// The caller holds the lease now (new, or the one it already held, with the same token).
    Acquired(Lease),
    /// Another owner holds a live lease; nothing changed.
    Held(Holder),
}

/// The answer of [`Lock::renew`](crate::Lock::renew).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewOutcome {
    /// The caller's live lease now expires a full ttl from now, with the same token.
    Renewed(Lease),
    /// The caller holds no live lease (expired, released, or another owner's); nothing changed.
    Lost,
}

/// The answer of [`Lock::release`](crate::Lock::release) and
/// [`Lock::force_release`](crate::Lock::force_release).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The live lease is gone; the name is open at once.
    Released,
    /// A live lease of another owner stands; nothing changed.
    NotOwner,
    /// No live lease stood; nothing changed.
    NotLocked,
}

/// The answer of [`Lock::inspect`](crate::Lock::inspect).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockState {
    /// No live lease.
    Open,
    /// A live lease.
    Locked(Holder),
}

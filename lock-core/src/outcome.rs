//! What each of the five operations answers.

use std::time::Duration;

use crate::{Holder, Holders, Lease};

/// The answer of one backend call, [`Lock::try_acquire`](crate::Lock::try_acquire): a single
/// try, no waiting.
///
/// Of the three acquisition answers, this is the backend's to a plain try;
/// [`InLineOutcome`](crate::raw::InLineOutcome) is the backend's to a try in line (for backend
/// authors); [`Acquisition`](crate::Acquisition) is what an acquisition that may wait
/// ([`acquire`](crate::acquire), [`Guard::acquire`](crate::Guard::acquire)) ends with.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// The caller holds the lease now (new, or the one it already held, with the same token).
    Acquired(Lease),
    /// The name has no room for the claim (another owner holds it, or every permit is
    /// taken): the holder whose lease runs out first; nothing changed.
    Held(Holder),
}

/// The answer of one backend call, [`Lock::try_acquire_in_line`](crate::Lock::try_acquire_in_line):
/// a try by a waiter standing in the name's line. A waiting acquisition makes these calls and
/// ends with an [`Acquisition`](crate::Acquisition); a plain try answers
/// [`AcquireOutcome`](crate::AcquireOutcome).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InLineOutcome {
    /// The caller holds the lease now; its place in line is given up.
    Acquired(Lease),
    /// The name has no room for the claim: the holder whose lease runs out first; the caller
    /// keeps its place in line.
    Held(Holder),
    /// The name has room for the claim, but a waiter ahead of the caller in line needs it
    /// first (for an exclusive claim: no live lease, but a waiter ahead); the caller keeps its
    /// place.
    Behind {
        /// How long the first place in line is kept unless its waiter asks again: when it
        /// lapses (its waiter died or gave up), the next in line moves up, so a waiter behind
        /// looks again then at the latest.
        first_kept_for: Duration,
    },
}

/// A plain try's answer, as a waiter in line would have had it where there is no line.
impl From<AcquireOutcome> for InLineOutcome {
    fn from(outcome: AcquireOutcome) -> Self {
        match outcome {
            AcquireOutcome::Acquired(lease) => Self::Acquired(lease),
            AcquireOutcome::Held(holder) => Self::Held(holder),
        }
    }
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
    /// The live lease is gone (for a force release, every live lease); its room is free at
    /// once.
    Released,
    /// Live leases stand, none of them the owner's; nothing changed.
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
    /// Live leases: every holder.
    Locked(Holders),
}

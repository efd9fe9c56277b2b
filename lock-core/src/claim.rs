//! [`Claim`]: what an acquisition asks a backend for.

use crate::{FencingToken, Kind, Lease, LockName, OwnerId, Ttl};

/// One acquisition's request: the name, who asks, for how long, and of which [`Kind`].
///
/// What [`Lock::try_acquire`](crate::Lock::try_acquire) and
/// [`Lock::try_acquire_in_line`](crate::Lock::try_acquire_in_line) take. Build it with
/// [`Claim::new`] (an exclusive claim) and [`Claim::with_kind`]; more fields may come (it is
/// `#[non_exhaustive]`), each with a default.
///
/// ```
/// # fn demo() -> Result<(), lock_core::InvalidInput> {
/// use lock_core::{Claim, Kind, LockName, OwnerId, Permits, Ttl};
///
/// let (name, owner) = (LockName::new("payments-api")?, OwnerId::random());
/// let claim = Claim::new(&name, &owner, Ttl::from_millis(30_000)?)
///     .with_kind(Kind::permit(Permits::new(4)?));
/// assert_eq!(claim.kind.capacity(), 4);
/// # Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The lock's name.
    pub name: &'a LockName,
    /// Who asks, and will hold the lease.
    pub owner: &'a OwnerId,
    /// How long the lease lives from its grant unless renewed.
    pub ttl: Ttl,
    /// How the lease shares the name; always normalized (`Permit(1)` is `Exclusive`).
    pub kind: Kind,
}

impl<'a> Claim<'a> {
    /// An exclusive claim on `name` for `owner`, lasting `ttl`.
    pub fn new(name: &'a LockName, owner: &'a OwnerId, ttl: Ttl) -> Self {
        Self {
            name,
            owner,
            ttl,
            kind: Kind::Exclusive,
        }
    }

    /// This claim, of `kind` (normalized: `Permit(1)` is `Exclusive`).
    pub fn with_kind(self, kind: Kind) -> Self {
        Self {
            kind: kind.normalized(),
            ..self
        }
    }

    /// The lease this claim gets when granted with `token`.
    pub fn lease(&self, token: FencingToken) -> Lease {
        Lease {
            name: self.name.clone(),
            owner: self.owner.clone(),
            token,
            ttl: self.ttl,
            kind: self.kind,
        }
    }
}

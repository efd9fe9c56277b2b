//! [`Lease`], [`Holder`] and [`Holders`]: what a backend says about who holds a name.

use std::time::Duration;

use crate::{FencingToken, Kind, LockName, OwnerId, Ttl};

/// A lease the caller holds: granted by try acquire, extended by renew.
///
/// Its expiry lives on the backend's own clock, `ttl` after the backend handled the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lock's name.
    pub name: LockName,
    /// The caller, who holds it.
    pub owner: OwnerId,
    /// The fencing token of this acquisition.
    pub token: FencingToken,
    /// How long it lives from the moment the backend granted or renewed it.
    pub ttl: Ttl,
    /// How it holds the name: alone, shared, or as one of N permits.
    pub kind: Kind,
}

/// Someone's live lease, as another client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Who holds it.
    pub owner: OwnerId,
    /// The holder's fencing token.
    pub token: FencingToken,
    /// Time left until it expires without renewal, on the backend's clock; `None` for a lease
    /// that never expires by itself (a Postgres session lock).
    pub expires_in: Option<Duration>,
    /// How it holds the name.
    pub kind: Kind,
}

/// Everyone holding a name at once: one exclusive holder, or shared holders, or the holders
/// of a semaphore's permits. Never empty; in the order of their tokens (the oldest grant
/// first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holders(Vec<Holder>);

impl Holders {
    /// The holders in `holders`, sorted by token; `None` when there are none.
    pub fn new(mut holders: Vec<Holder>) -> Option<Self> {
        holders.sort_by_key(|h| h.token);
        (!holders.is_empty()).then_some(Self(holders))
    }

    /// A lone holder.
    pub fn one(holder: Holder) -> Self {
        Self(vec![holder])
    }

    /// The holder with the lowest token (for an exclusive lock, the holder).
    pub fn first(&self) -> &Holder {
        &self.0[0]
    }

    /// Every holder, by token.
    pub fn as_slice(&self) -> &[Holder] {
        &self.0
    }

    /// How many hold the name.
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// How the name is held: [`Kind::Exclusive`] when an exclusive lease stands,
    /// [`Kind::Shared`] for readers, [`Kind::Permit`] for a semaphore.
    pub fn kind(&self) -> Kind {
        let first = self.first().kind;
        if self.0.iter().any(|h| h.kind == Kind::Exclusive) {
            Kind::Exclusive
        } else {
            first
        }
    }

    /// For a semaphore, its number of permits and how many are free; `None` otherwise.
    pub fn permits(&self) -> Option<(u32, u32)> {
        match self.kind() {
            Kind::Permit(n) => {
                let used = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
                Some((n.get(), n.get().saturating_sub(used)))
            }
            _ => None,
        }
    }

    /// The holder whose lease runs out first (the earliest a waiter can hope for room), the
    /// lower token on a tie; leases that never expire by themselves come last.
    pub fn next_to_expire(&self) -> &Holder {
        self.0
            .iter()
            .min_by_key(|h| (h.expires_in.is_none(), h.expires_in, h.token))
            .expect("never empty")
    }
}

impl<'a> IntoIterator for &'a Holders {
    type Item = &'a Holder;
    type IntoIter = std::slice::Iter<'a, Holder>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

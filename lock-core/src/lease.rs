//! [`Lease`] and [`Holder`]: what a backend says about who holds a name.

use std::time::Duration;

use crate::{FencingToken, LockName, OwnerId, Ttl};

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
}

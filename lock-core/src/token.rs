//! [`FencingToken`]: the number that lets a resource refuse a stale holder.

use std::fmt;
use std::num::NonZeroU64;

/// A positive integer handed out with every successful acquisition.
///
/// For one name it strictly increases over the lock's whole life: across release, expiry,
/// force release and a restart of the backend. A resource that remembers the highest token it
/// has seen can refuse a holder that was paused past its ttl. Re-acquiring a lease one already
/// holds keeps its token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FencingToken(NonZeroU64);

impl FencingToken {
    /// Wraps a positive value; `None` for zero.
    pub fn new(value: u64) -> Option<Self> {
        NonZeroU64::new(value).map(Self)
    }

    /// The token's value.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

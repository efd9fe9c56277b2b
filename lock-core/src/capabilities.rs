//! [`Capabilities`]: what a backend can do, so that callers and the conformance suite know.

/// What a backend offers beyond the five operations every backend has.
///
/// A flat struct: build it with struct-update syntax from `Capabilities::default()` (all
/// `false`), naming what the backend has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// A lease lapses `ttl` after its last grant or renewal unless renewed.
    pub expiry: bool,
    /// Successful acquisitions hand out fencing tokens that strictly increase per name.
    pub fencing: bool,
    /// [`Lock::watch`](crate::Lock::watch) reports changes as events (no polling).
    pub wake_on_release: bool,
    /// Handles in different operating-system processes see the same locks.
    pub cross_process: bool,
    /// Any handle can act for any owner: a lease taken through one handle is renewed,
    /// released or re-acquired through another handle given the same owner id. A backend that
    /// ties a lease to the connection that took it (a Postgres session lock) has `false`.
    pub owner_on_any_handle: bool,
    /// Waiters stand in a line per name and are served first come, first served
    /// ([`Lock::try_acquire_in_line`](crate::Lock::try_acquire_in_line)); without it, a
    /// release goes to whichever waiter asks first.
    pub fair_line: bool,
    /// A lease can be tied to the life of the processes that hold it ([`Lock::tie`](crate::Lock::tie)):
    /// once they are all gone, the name is free at once instead of after the ttl. (A backend
    /// without it may still give a tie that only keeps a lease alive: see
    /// [`Lock::tie`](crate::Lock::tie).)
    pub holder_tie: bool,
}

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
    /// Semaphores: claims of [`Kind::Permit`](crate::Kind::Permit), at most N holders at once,
    /// each with its own lease and token. Without it, such a claim is refused with
    /// [`InvalidInput::KindUnsupported`](crate::InvalidInput::KindUnsupported) before anything is
    /// sent.
    pub permits: bool,
    /// Reader-writer locks: claims of [`Kind::Shared`](crate::Kind::Shared) beside exclusive
    /// ones. Without it, a shared claim is refused as for `permits`.
    pub shared: bool,
}

impl Capabilities {
    /// Whether a claim of `kind` can be sent to this backend: exclusive claims always can.
    pub fn offers(&self, kind: crate::Kind) -> bool {
        match kind.normalized() {
            crate::Kind::Exclusive => true,
            crate::Kind::Shared => self.shared,
            crate::Kind::Permit(_) => self.permits,
        }
    }

    /// `Ok` when [`offers`](Self::offers) says so, else the typed refusal a caller returns
    /// before sending anything.
    ///
    /// # Errors
    /// [`InvalidInput::KindUnsupported`](crate::InvalidInput::KindUnsupported).
    pub fn check(&self, kind: crate::Kind) -> Result<(), crate::Error> {
        if self.offers(kind) {
            Ok(())
        } else {
            Err(crate::InvalidInput::KindUnsupported { kind }.into())
        }
    }
}

//! The suite catches the bugs it exists for: each backend below breaks one rule (the seed's
//! renewal that extends whoever holds the lock, its release that does not check the owner, a
//! token that does not rise, a read-then-write acquire, a line that serves whoever asks, a
//! release that wakes the wrong waiter's turn, a tie that holds nothing), and the case for
//! that rule fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use conformance_tests::{Setup, cases, run_case};
use lock_core::raw::{ChangeFuture, InLineOutcome, async_trait};
use lock_core::{
    AcquireOutcome, Capabilities, Claim, Error, FencingToken, HolderTie, Lock, LockName, LockState,
    MemoryLock, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bug {
    /// renew extends the lease of whoever holds it (the seed's EXPIRE without owner check).
    RenewAnyOwner,
    /// release deletes whatever lease stands (the seed's GET then DEL, raced).
    ReleaseAnyOwner,
    /// every acquisition gets token 1.
    FlatTokens,
    /// try acquire reads, pauses, then writes.
    ReadThenWrite,
    /// claims a fair line, but a waiter in line is served whenever it asks.
    NoLine,
    /// wakes a turn that is not the first in line's.
    WrongTurn,
    /// claims to tie leases, but its ties hold nothing: closing them ends no lease.
    TieHoldsNothing,
}

#[derive(Debug)]
struct Broken {
    bug: Bug,
    inner: Arc<MemoryLock>,
}

#[async_trait]
impl Lock for Broken {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            holder_tie: self.bug == Bug::TieHoldsNothing,
            ..self.inner.capabilities()
        }
    }

    async fn tie(&self, name: &LockName, owner: &OwnerId) -> Result<Option<HolderTie>, Error> {
        match self.inner.inspect(name).await? {
            LockState::Locked(hs)
                if hs.first().owner == *owner && self.bug == Bug::TieHoldsNothing =>
            {
                let fd = std::fs::File::open("/dev/null").expect("/dev/null");
                Ok(Some(HolderTie::from_fd(fd.into())))
            }
            _ => Ok(None),
        }
    }

    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        let name = claim.name;
        if self.bug == Bug::ReadThenWrite && self.inner.inspect(name).await? == LockState::Open {
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.inner.force_release(name).await?;
        }
        match self.inner.try_acquire(claim).await? {
            AcquireOutcome::Acquired(mut lease) if self.bug == Bug::FlatTokens => {
                lease.token = FencingToken::new(1).unwrap();
                Ok(AcquireOutcome::Acquired(lease))
            }
            other => Ok(other),
        }
    }

    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        if self.bug == Bug::NoLine {
            return Ok(self.inner.try_acquire(claim).await?.into());
        }
        self.inner.try_acquire_in_line(claim, patience).await
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        self.inner.leave_line(name, owner).await
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        if self.bug == Bug::RenewAnyOwner
            && let LockState::Locked(h) = self.inner.inspect(name).await?
        {
            return self.inner.renew(name, &h.first().owner, ttl).await;
        }
        self.inner.renew(name, owner, ttl).await
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        if self.bug == Bug::ReleaseAnyOwner {
            return self.inner.force_release(name).await;
        }
        self.inner.release(name, owner).await
    }

    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        self.inner.force_release(name).await
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        self.inner.inspect(name).await
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        self.inner.watch(name).await
    }

    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        let owner = match self.bug {
            Bug::WrongTurn => OwnerId::random(),
            _ => owner.clone(),
        };
        self.inner.watch_turn(name, &owner).await
    }
}

/// One store per setup, shared by its handles.
struct BrokenSetup(Bug, Arc<MemoryLock>);

#[async_trait]
impl Setup for BrokenSetup {
    fn location(&self) -> String {
        format!("{:?}", self.0)
    }

    async fn connect(&self, _: &str) -> Arc<dyn Lock> {
        Arc::new(Broken {
            bug: self.0,
            inner: self.1.clone(),
        })
    }
}

/// Whether the case named `case` fails against a backend with `bug`.
fn fails(bug: Bug, case: &'static str) -> bool {
    let setup = Arc::new(BrokenSetup(bug, Arc::new(MemoryLock::new())));
    let case = cases::case(case).expect("a listed case");
    catch_unwind(AssertUnwindSafe(|| run_case(setup, case))).is_err()
}

#[test]
fn the_seeds_renewal_of_any_owner_is_caught() {
    assert!(fails(
        Bug::RenewAnyOwner,
        "renew_never_extends_another_owner"
    ));
}

#[test]
fn a_release_by_any_owner_is_caught() {
    assert!(fails(
        Bug::ReleaseAnyOwner,
        "release_by_non_owner_changes_nothing"
    ));
}

#[test]
fn tokens_that_do_not_rise_are_caught() {
    assert!(fails(
        Bug::FlatTokens,
        "tokens_rise_across_release_expiry_and_force"
    ));
}

#[test]
fn a_read_then_write_acquire_is_caught() {
    assert!(fails(Bug::ReadThenWrite, "racing_clients_exactly_one_wins"));
}

#[test]
fn a_line_that_serves_whoever_asks_is_caught() {
    assert!(fails(Bug::NoLine, "line_serves_waiters_in_order"));
}

#[test]
fn a_release_that_wakes_the_wrong_turn_is_caught() {
    assert!(fails(
        Bug::WrongTurn,
        "release_wakes_watchers_and_the_first_in_line"
    ));
}

#[test]
fn a_leave_that_wakes_the_wrong_turn_is_caught() {
    assert!(fails(
        Bug::WrongTurn,
        "leaving_the_line_wakes_the_next_turn"
    ));
}

#[test]
fn an_intact_backend_passes_the_same_cases() {
    // FlatTokens breaks only fencing: the other cases pass on it, so `fails` is not
    // simply "every case panics on this harness".
    for case in [
        "renew_never_extends_another_owner",
        "release_by_non_owner_changes_nothing",
        "racing_clients_exactly_one_wins",
        "waiters_are_served_in_order",
        "release_wakes_watchers_and_the_first_in_line",
    ] {
        let setup = Arc::new(BrokenSetup(Bug::FlatTokens, Arc::new(MemoryLock::new())));
        assert!(
            run_case(setup, cases::case(case).unwrap()),
            "{case} was ignored"
        );
    }
}

#[test]
fn a_tie_that_does_not_end_the_lease_is_caught() {
    assert!(fails(
        Bug::TieHoldsNothing,
        "closing_the_tie_ends_the_lease"
    ));
}

/// A case the backend's capabilities rule out is not run: reported as ignored, not passed.
#[test]
fn a_case_a_capability_rules_out_is_not_run() {
    let setup = Arc::new(BrokenSetup(Bug::FlatTokens, Arc::new(MemoryLock::new())));
    let case = cases::case("closing_the_tie_ends_the_lease").unwrap();
    assert!(!run_case(setup, case), "the memory backend cannot tie");
}

//! The suite catches the bugs it exists for: each backend below breaks one rule (the seed's
//! renewal that extends whoever holds the lock, its release that does not check the owner, a
//! token that does not rise, a read-then-write acquire, a line that serves whoever asks, a
//! release that wakes the wrong waiter's turn), and
//! the case for that rule fails.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use conformance_tests::{Setup, Suite, cases, run};
use lock_core::raw::{ChangeFuture, InLineOutcome, async_trait};
use lock_core::{
    AcquireOutcome, Capabilities, Error, FencingToken, Lock, LockName, LockState, MemoryLock,
    OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
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
}

#[derive(Debug)]
struct Broken {
    bug: Bug,
    inner: Arc<MemoryLock>,
}

#[async_trait]
impl Lock for Broken {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error> {
        if self.bug == Bug::ReadThenWrite && self.inner.inspect(name).await? == LockState::Open {
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.inner.force_release(name).await?;
        }
        match self.inner.try_acquire(name, owner, ttl).await? {
            AcquireOutcome::Acquired(mut lease) if self.bug == Bug::FlatTokens => {
                lease.token = FencingToken::new(1).unwrap();
                Ok(AcquireOutcome::Acquired(lease))
            }
            other => Ok(other),
        }
    }

    async fn try_acquire_in_line(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        if self.bug == Bug::NoLine {
            return Ok(self.inner.try_acquire(name, owner, ttl).await?.into());
        }
        self.inner
            .try_acquire_in_line(name, owner, ttl, patience)
            .await
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
            return self.inner.renew(name, &h.owner, ttl).await;
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

impl Setup for BrokenSetup {
    fn location(&self) -> String {
        format!("{:?}", self.0)
    }

    fn connect(&self, _: &str) -> Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send + '_>> {
        let lock = Broken {
            bug: self.0,
            inner: self.1.clone(),
        };
        Box::pin(async move { Arc::new(lock) as Arc<dyn Lock> })
    }
}

type Case = for<'a> fn(&'a Suite) -> conformance_tests::CaseFuture<'a>;

fn fails(bug: Bug, case: &'static str, body: Case) -> bool {
    let setup = BrokenSetup(bug, Arc::new(MemoryLock::new()));
    catch_unwind(AssertUnwindSafe(|| run(module_path!(), case, setup, body))).is_err()
}

#[test]
fn the_seeds_renewal_of_any_owner_is_caught() {
    assert!(fails(
        Bug::RenewAnyOwner,
        "renew_never_extends_another_owner",
        |s| { Box::pin(cases::renew_never_extends_another_owner(s)) }
    ));
}

#[test]
fn a_release_by_any_owner_is_caught() {
    assert!(fails(
        Bug::ReleaseAnyOwner,
        "release_by_non_owner_changes_nothing",
        |s| { Box::pin(cases::release_by_non_owner_changes_nothing(s)) }
    ));
}

#[test]
fn tokens_that_do_not_rise_are_caught() {
    assert!(fails(
        Bug::FlatTokens,
        "tokens_rise_across_release_expiry_and_force",
        |s| { Box::pin(cases::tokens_rise_across_release_expiry_and_force(s)) }
    ));
}

#[test]
fn a_read_then_write_acquire_is_caught() {
    assert!(fails(
        Bug::ReadThenWrite,
        "racing_clients_exactly_one_wins",
        |s| { Box::pin(cases::racing_clients_exactly_one_wins(s)) }
    ));
}

#[test]
fn a_line_that_serves_whoever_asks_is_caught() {
    assert!(fails(Bug::NoLine, "line_serves_waiters_in_order", |s| {
        Box::pin(cases::line_serves_waiters_in_order(s))
    }));
}

#[test]
fn a_release_that_wakes_the_wrong_turn_is_caught() {
    assert!(fails(
        Bug::WrongTurn,
        "release_wakes_watchers_and_the_first_in_line",
        |s| Box::pin(cases::release_wakes_watchers_and_the_first_in_line(s))
    ));
}

#[test]
fn a_leave_that_wakes_the_wrong_turn_is_caught() {
    assert!(fails(
        Bug::WrongTurn,
        "leaving_the_line_wakes_the_next_turn",
        |s| Box::pin(cases::leaving_the_line_wakes_the_next_turn(s))
    ));
}

#[test]
fn an_intact_backend_passes_the_same_cases() {
    let setup = || BrokenSetup(Bug::FlatTokens, Arc::new(MemoryLock::new()));
    // FlatTokens breaks only fencing: the other cases pass on it, so `fails` is not
    // simply "every case panics on this harness".
    run(
        module_path!(),
        "renew_never_extends_another_owner",
        setup(),
        |s| Box::pin(cases::renew_never_extends_another_owner(s)),
    );
    run(
        module_path!(),
        "release_by_non_owner_changes_nothing",
        setup(),
        |s| Box::pin(cases::release_by_non_owner_changes_nothing(s)),
    );
    run(
        module_path!(),
        "racing_clients_exactly_one_wins",
        setup(),
        |s| Box::pin(cases::racing_clients_exactly_one_wins(s)),
    );
    run(
        module_path!(),
        "waiters_are_served_in_order",
        setup(),
        |s| Box::pin(cases::waiters_are_served_in_order(s)),
    );
    run(
        module_path!(),
        "release_wakes_watchers_and_the_first_in_line",
        setup(),
        |s| Box::pin(cases::release_wakes_watchers_and_the_first_in_line(s)),
    );
}

//! What the cases share: timings, the short checks on answers, and the names every case file
//! uses (`use super::support::*`).

pub(super) use std::collections::HashSet;
pub(super) use std::sync::Arc;
pub(super) use std::time::Duration;

pub(super) use lock_core::raw::InLineOutcome;
pub(super) use lock_core::{
    AcquireOptions, AcquireOutcome, Acquisition, Claim, Guard, Holder, Holders, Kind, Lease, Lock,
    LockName, LockState, LossReason, OwnerId, Permits, ReleaseOutcome, RenewOutcome, Ttl, Wait,
};

pub(super) use crate::suite::{Client, Suite, sleep_ms, ttl};

/// Long enough never to lapse during a case.
pub(super) const LONG: u64 = 60_000;
/// Short enough to watch lapse (the contract's 100–300 ms). Only for leases that a case waits
/// to see lapse: a slow machine can only make that wait longer, never the assertion wrong.
pub(super) const SHORT: u64 = 200;
/// For leases that must *not* lapse before the case's next operation lands: long enough for a
/// durable commit on a loaded two-core machine, short enough to watch lapse.
pub(super) const RENEWABLE: u64 = 1_000;
/// How long a case waits for something that should come promptly before it calls it missing.
pub(super) const PATIENCE: Duration = Duration::from_secs(10);

/// The lease of an acquired answer, from a plain try or one in line.
pub(super) fn acquired(outcome: impl Into<InLineOutcome>) -> Lease {
    match outcome.into() {
        InLineOutcome::Acquired(lease) => lease,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// The holder of a held answer, from a plain try or one in line.
pub(super) fn held(outcome: impl Into<InLineOutcome>) -> Holder {
    match outcome.into() {
        InLineOutcome::Held(holder) => holder,
        other => panic!("expected held, got {other:?}"),
    }
}

/// A guard on `name` with a ttl of `ttl_ms`, taken without waiting.
pub(super) async fn held_guard(lock: Arc<dyn Lock>, name: &LockName, ttl_ms: u64) -> Guard {
    let options = AcquireOptions::new().ttl(ttl(ttl_ms)).wait(Wait::No);
    Guard::acquire(lock, name.clone(), options)
        .await
        .expect("acquire")
        .acquired()
        .expect("acquired")
}

/// Behind, the first place ahead kept for at most `kept_ms`.
pub(super) fn behind(outcome: InLineOutcome, kept_ms: u64) {
    match outcome {
        InLineOutcome::Behind { first_kept_for } => assert!(
            first_kept_for <= Duration::from_millis(kept_ms),
            "the first place is kept for {first_kept_for:?}, over the {kept_ms} ms it asked for"
        ),
        other => panic!("expected behind, got {other:?}"),
    }
}

/// The lone holder of a locked name.
pub(super) fn locked(state: LockState) -> Holder {
    let holders = holders(state);
    assert_eq!(holders.len(), 1, "expected one holder: {holders:?}");
    holders.first().clone()
}

/// Every holder of a locked name.
pub(super) fn holders(state: LockState) -> Holders {
    match state {
        LockState::Locked(holders) => holders,
        other => panic!("expected locked, got {other:?}"),
    }
}

//! The guard: renewing, telling a loss, releasing on drop, tying its lease.

use super::support::*;

/// guard: renews in the background, so the lease outlives its ttl while held.
pub async fn guard_renews_past_ttl(s: &Suite) {
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, RENEWABLE).await;
    sleep_ms(RENEWABLE * 5 / 2).await;
    assert_eq!(guard.loss(), None);
    let holder = locked(other.inspect(&name).await);
    assert_eq!(holder.token, guard.token());
    assert_eq!(
        guard.release().await.expect("release"),
        ReleaseOutcome::Released
    );
    assert_eq!(other.inspect(&name).await, LockState::Open);
}

/// guard: says at once, with a reason, when its lease is force released from outside.
pub async fn guard_tells_when_lost(s: &Suite) {
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, RENEWABLE).await;
    assert_eq!(other.force_release(&name).await, ReleaseOutcome::Released);
    acquired(other.acquire(&name, ttl(LONG)).await);
    let reason = tokio::time::timeout(PATIENCE, guard.lost())
        .await
        .expect("the guard reports the loss");
    assert_eq!(reason, LossReason::Refused);
    assert_eq!(
        guard.release().await.expect("release"),
        ReleaseOutcome::NotOwner
    );
}

/// guard: dropping it releases the lease (best effort), so the name opens without its ttl.
pub async fn guard_drop_releases(s: &Suite) {
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, LONG).await;
    drop(guard);
    let got = other.wait(&name, ttl(LONG), Wait::For(PATIENCE)).await;
    assert!(matches!(&got, Acquisition::Acquired(_)), "{got:?}");
}

/// guard: on a backend that ties leases, the guard ties its own, so that a process that dies
/// holding it frees the name at once.
pub async fn guard_ties_its_lease(s: &Suite) {
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, LONG).await;
    assert!(guard.tie().is_some(), "the guard made no tie");
    held(other.acquire(&name, ttl(LONG)).await);
    guard.release().await.expect("release");
}

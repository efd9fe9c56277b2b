//! Release and force release.

use super::support::*;

/// release, own live lease: released; open at once, so another client acquires.
pub async fn release_by_holder_opens_at_once(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    assert_eq!(b.inspect(&name).await, LockState::Open);
    acquired(b.acquire(&name, ttl(LONG)).await);
}

/// release, another owner's live lease: not owner; nothing changes.
pub async fn release_by_non_owner_changes_nothing(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(b.release(&name).await, ReleaseOutcome::NotOwner);
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
    held(b.acquire(&name, ttl(LONG)).await);
}

/// release, no live lease: not locked; nothing changes.
pub async fn release_when_open_is_not_locked(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    assert_eq!(a.release(&name).await, ReleaseOutcome::NotLocked);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// release, own lease that expired: not locked.
pub async fn release_after_expiry_is_not_locked(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    sleep_ms(SHORT + 150).await;
    assert_eq!(a.release(&name).await, ReleaseOutcome::NotLocked);
}

/// force release, any live lease: released; open at once; the next token is higher.
pub async fn force_release_opens_any_lease(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let first = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(b.force_release(&name).await, ReleaseOutcome::Released);
    assert_eq!(b.inspect(&name).await, LockState::Open);
    let next = acquired(b.acquire(&name, ttl(LONG)).await);
    if s.capabilities().fencing {
        assert!(
            next.token > first.token,
            "{:?} after {:?}",
            next.token,
            first.token
        );
    }
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
}

/// force release, no live lease: not locked; nothing changes.
pub async fn force_release_when_open_is_not_locked(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    assert_eq!(a.force_release(&name).await, ReleaseOutcome::NotLocked);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

//! Renew: the owner's live lease only.

use super::support::*;

/// renew, own live lease: renewed; expiry moves to now + ttl, same token.
pub async fn renew_extends_own_lease(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    for _ in 0..5 {
        sleep_ms(RENEWABLE / 4).await;
        match a.renew(&name, ttl(RENEWABLE)).await {
            RenewOutcome::Renewed(renewed) => assert_eq!(renewed.token, lease.token),
            other => panic!("expected renewed, got {other:?}"),
        }
    }
    // Five renewals carried it past its first ttl.
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
}

/// renew, lease expired: lost; nothing changes (the lease is not re-created).
pub async fn renew_after_expiry_is_lost(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    sleep_ms(SHORT + 150).await;
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// renew, lease released: lost; nothing changes.
pub async fn renew_after_release_is_lost(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// renew, another owner's lease: lost; that lease is never extended.
pub async fn renew_never_extends_another_owner(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    assert_eq!(b.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    let holder = locked(b.inspect(&name).await);
    assert_eq!((&holder.owner, holder.token), (&a.owner, lease.token));
    if s.capabilities().expiry {
        // Still on a's ttl: it lapses, and b's renew did not keep it alive.
        sleep_ms(RENEWABLE + 500).await;
        assert_eq!(b.inspect(&name).await, LockState::Open);
    }
}

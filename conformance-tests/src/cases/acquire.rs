//! Try acquire: an open name, a held one, the holder's retry.

use super::support::*;

/// try acquire, no live lease: acquired with a token; the caller holds it.
pub async fn acquire_open_name(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!((&lease.name, &lease.owner), (&name, &a.owner));
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
}

/// try acquire, another owner's live lease: held (who, time left); nothing changes.
pub async fn acquire_held_name_is_refused(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    let holder = held(b.acquire(&name, ttl(LONG)).await);
    assert_eq!((&holder.owner, holder.token), (&a.owner, lease.token));
    if s.capabilities().expiry {
        let left = holder
            .expires_in
            .expect("a lease with expiry says its time left");
        assert!(
            left <= Duration::from_millis(LONG) && !left.is_zero(),
            "time left {left:?}"
        );
    }
    let still = locked(b.inspect(&name).await);
    assert_eq!((still.owner, still.token), (a.owner.clone(), lease.token));
}

/// try acquire, own live lease: acquired with the same token; expiry moves to now + ttl.
pub async fn reacquire_by_holder_keeps_token(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let first = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    let again = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(
        first.token, again.token,
        "an idempotent retry keeps its token"
    );
    if s.capabilities().expiry {
        // The retry's longer ttl took effect: the lease outlives the first ttl.
        sleep_ms(RENEWABLE + 500).await;
        let holder = locked(a.inspect(&name).await);
        assert_eq!((holder.owner, holder.token), (a.owner.clone(), first.token));
    }
}

//! Inspect, and a lease's expiry.

use super::support::*;

/// inspect: open, or locked with owner, token and time left; nothing changes.
pub async fn inspect_reports_and_changes_nothing(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    assert_eq!(b.inspect(&name).await, LockState::Open);
    acquired(b.acquire(&name, ttl(LONG)).await);
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    for _ in 0..3 {
        let holder = locked(b.inspect(&name).await);
        assert_eq!((&holder.owner, holder.token), (&a.owner, lease.token));
        if s.capabilities().expiry {
            let left = holder.expires_in.expect("time left");
            assert!(left <= Duration::from_millis(LONG) && !left.is_zero());
        }
    }
}

/// expiry: a lease not renewed lapses after its ttl (and not before), then anyone acquires.
pub async fn lease_expires_after_ttl(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    let holder = held(b.acquire(&name, ttl(LONG)).await);
    assert_eq!(holder.token, lease.token, "live right after the grant");
    sleep_ms(RENEWABLE + 500).await;
    assert_eq!(b.inspect(&name).await, LockState::Open);
    let next = acquired(b.acquire(&name, ttl(LONG)).await);
    if s.capabilities().fencing {
        assert!(next.token > lease.token);
    }
}

//! Fencing tokens.

use super::support::*;

/// fencing: tokens strictly increase across release, expiry and force release.
pub async fn tokens_rise_across_release_expiry_and_force(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let mut tokens = vec![acquired(a.acquire(&name, ttl(LONG)).await).token];
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    tokens.push(acquired(b.acquire(&name, ttl(SHORT)).await).token);
    if s.capabilities().expiry {
        sleep_ms(SHORT + 150).await;
    } else {
        assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    }
    tokens.push(acquired(a.acquire(&name, ttl(LONG)).await).token);
    assert_eq!(b.force_release(&name).await, ReleaseOutcome::Released);
    tokens.push(acquired(b.acquire(&name, ttl(LONG)).await).token);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens must strictly rise: {tokens:?}"
    );
}

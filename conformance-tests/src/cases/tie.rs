//! Ties: a lease bound to the life of the processes that hold it (`Lock::tie`).

use super::support::*;

/// tie, a live lease of the owner: some tie; once every copy is closed the lease has ended:
/// inspect says open, the owner's renewal is lost, the next acquisition takes the name at once
/// with a higher token.
pub async fn closing_the_tie_ends_the_lease(s: &Suite) {
    let [a, b] = s.clients().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    let tie = a.tie(&name).await.expect("a tie of a live lease");
    held(b.acquire(&name, ttl(LONG)).await);
    drop(tie);
    assert_eq!(a.inspect(&name).await, LockState::Open);
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    let next = acquired(b.acquire(&name, ttl(LONG)).await);
    assert!(
        next.token > lease.token,
        "{} after {}",
        next.token,
        lease.token
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::NotOwner);
}

/// tie: while the tie or a copy of it is open, every operation sees the lease as before.
pub async fn a_copy_of_the_tie_keeps_the_lease(s: &Suite) {
    let [a, b] = s.clients().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    let tie = a.tie(&name).await.expect("a tie");
    let copy = tie.try_clone().expect("a copy of the tie");
    let second = a.tie(&name).await.expect("a second tie");
    drop(tie);
    drop(second);
    let holder = held(b.acquire(&name, ttl(LONG)).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
    assert!(matches!(
        a.renew(&name, ttl(LONG)).await,
        RenewOutcome::Renewed(_)
    ));
    drop(copy);
    acquired(b.acquire(&name, ttl(LONG)).await);
}

/// tie: a re-acquisition or renewal by the owner keeps the lease tied.
pub async fn renewal_and_reacquisition_keep_the_tie(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    let tie = a.tie(&name).await.expect("a tie");
    assert!(matches!(
        a.renew(&name, ttl(LONG)).await,
        RenewOutcome::Renewed(_)
    ));
    let again = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(again.token, lease.token);
    drop(tie);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// tie: a tie does not keep a lease past its expiry.
pub async fn a_tied_lease_still_lapses_at_its_ttl(s: &Suite) {
    let [a, b] = s.clients().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    let _tie = a.tie(&name).await.expect("a tie");
    sleep_ms(SHORT + 50).await;
    acquired(b.acquire(&name, ttl(LONG)).await);
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
}

/// tie, no live lease of the owner: none; nothing changes.
pub async fn a_tie_needs_a_live_lease_of_its_owner(s: &Suite) {
    let [a, b] = s.clients().await;
    let name = s.name("n");
    assert!(a.tie(&name).await.is_none(), "tied an open name");
    let lease = acquired(b.acquire(&name, ttl(LONG)).await);
    assert!(a.tie(&name).await.is_none(), "tied another owner's lease");
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (b.owner.clone(), lease.token));
    drop(b.tie(&name).await.expect("the holder's own tie"));
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// tie, without holder_tie: a tie, if the backend gives one, only keeps the lease; closing it
/// while the handle lives ends nothing: the holder, its token, its renewal and its release are
/// as before.
pub async fn a_tie_without_holder_tie_only_keeps_the_lease(s: &Suite) {
    let [a, b] = s.clients().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    drop(a.tie(&name).await);
    let holder = held(b.acquire(&name, ttl(LONG)).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
    assert!(matches!(
        a.renew(&name, ttl(LONG)).await,
        RenewOutcome::Renewed(_)
    ));
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    acquired(b.acquire(&name, ttl(LONG)).await);
}

//! Semaphores: at most N leases at once, each with its own lease and token.

use super::support::*;

fn three() -> Kind {
    Kind::permit(Permits::new(3).expect("3 permits"))
}

/// permits: a semaphore of N admits N holders, each with its own rising token, and refuses the next.
pub async fn a_semaphore_admits_at_most_n(s: &Suite) {
    let [a, b, c, d] = s.clients().await;
    let name = s.name("n");
    let mut tokens = Vec::new();
    for w in [&a, &b, &c] {
        let lease = acquired(w.claim(&name, ttl(LONG), three()).await.expect("claim"));
        assert_eq!((&lease.owner, lease.kind), (&w.owner, three()));
        tokens.push(lease.token);
    }
    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    let full = d.claim(&name, ttl(LONG), three()).await.expect("claim");
    assert!(
        matches!(&full, AcquireOutcome::Held(h) if h.owner != d.owner && h.kind == three()),
        "the fourth is refused: {full:?}"
    );
    let holders = holders(d.inspect(&name).await);
    let owners: Vec<_> = holders.as_slice().iter().map(|h| &h.owner).collect();
    assert_eq!(owners, [&a.owner, &b.owner, &c.owner]);
    assert_eq!(holders.permits(), Some((3, 0)));
    assert_eq!(holders.kind(), three());
}

/// permits: a holder asking again keeps its token; a release frees exactly its own permit.
pub async fn a_release_frees_exactly_one_permit(s: &Suite) {
    let [a, b, c, d, e] = s.clients().await;
    let name = s.name("n");
    let first = acquired(a.claim(&name, ttl(LONG), three()).await.expect("claim"));
    let again = acquired(a.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert_eq!(again.token, first.token, "a retry keeps the token");
    acquired(b.claim(&name, ttl(LONG), three()).await.expect("claim"));
    acquired(c.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert_eq!(d.release(&name).await, ReleaseOutcome::NotOwner);
    assert_eq!(holders(d.inspect(&name).await).len(), 3, "nothing changed");
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    let left = holders(d.inspect(&name).await);
    assert_eq!(left.permits(), Some((3, 1)));
    assert!(left.as_slice().iter().all(|h| h.owner != b.owner));
    let lease = acquired(d.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert!(
        lease.token > first.token,
        "a new permit gets a higher token"
    );
    held(e.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert_eq!(b.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    assert!(
        matches!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Renewed(l) if l.token == first.token)
    );
}

/// permits: the expiry of one permit frees exactly one.
pub async fn expiry_of_one_permit_frees_exactly_one(s: &Suite) {
    let [a, b, c, d, e] = s.clients().await;
    let name = s.name("n");
    acquired(a.claim(&name, ttl(SHORT), three()).await.expect("claim"));
    acquired(b.claim(&name, ttl(LONG), three()).await.expect("claim"));
    acquired(c.claim(&name, ttl(LONG), three()).await.expect("claim"));
    held(d.claim(&name, ttl(LONG), three()).await.expect("claim"));
    sleep_ms(SHORT + 150).await;
    assert_eq!(holders(d.inspect(&name).await).permits(), Some((3, 1)));
    acquired(d.claim(&name, ttl(LONG), three()).await.expect("claim"));
    held(e.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
}

/// permits: a claim with another N, or of another kind, is refused naming the N in force; nothing changes.
pub async fn another_n_is_refused_and_changes_nothing(s: &Suite) {
    let [a, b] = s.clients().await;
    let name = s.name("n");
    acquired(a.claim(&name, ttl(LONG), three()).await.expect("claim"));
    let before = holders(a.inspect(&name).await);
    let four = Kind::permit(Permits::new(4).expect("4"));
    let mut others = vec![four, Kind::Exclusive];
    if s.capabilities().shared {
        others.push(Kind::Shared);
    }
    for (who, kind) in others.iter().map(|k| (&b, *k)).chain([(&a, four)]) {
        match who.claim(&name, ttl(LONG), kind).await {
            Err(lock_core::Error::InvalidInput(lock_core::InvalidInput::KindMismatch {
                held_as,
                asked,
                ..
            })) => {
                assert_eq!((held_as, asked), (three(), kind));
            }
            other => panic!("{kind:?} on a semaphore of 3: expected a mismatch, got {other:?}"),
        }
    }
    let after = holders(a.inspect(&name).await);
    assert_eq!(after.as_slice().len(), before.as_slice().len());
    assert_eq!(after.first().token, before.first().token, "nothing changed");
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    let lease = acquired(b.claim(&name, ttl(LONG), four).await.expect("claim"));
    assert_eq!(
        lease.kind, four,
        "with no live lease, another N is free to take"
    );
}

/// permits: a force release removes every permit's lease; the next grant gets a higher token.
pub async fn force_release_removes_every_permit(s: &Suite) {
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let first = acquired(a.claim(&name, ttl(LONG), three()).await.expect("claim"));
    acquired(b.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert_eq!(c.force_release(&name).await, ReleaseOutcome::Released);
    assert_eq!(c.inspect(&name).await, LockState::Open);
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    let next = acquired(c.claim(&name, ttl(LONG), three()).await.expect("claim"));
    assert!(next.token > first.token);
}

/// permits: waiters in line are served in order as permits free, one permit each.
pub async fn permit_waiters_are_served_in_order(s: &Suite) {
    let [a, b, c, d, e] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    for w in [&a, &b, &c] {
        acquired(w.claim(&name, ttl(LONG), three()).await.expect("claim"));
    }
    held(d.claim_in_line(&name, ttl(LONG), three(), keep).await);
    held(e.claim_in_line(&name, ttl(LONG), three(), keep).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    behind(e.claim_in_line(&name, ttl(LONG), three(), keep).await, LONG);
    acquired(d.claim_in_line(&name, ttl(LONG), three(), keep).await);
    held(e.claim_in_line(&name, ttl(LONG), three(), keep).await);
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    acquired(e.claim_in_line(&name, ttl(LONG), three(), keep).await);
}

/// permits: a release wakes the waiter it can serve, not the ones behind.
pub async fn a_release_wakes_the_next_that_fits(s: &Suite) {
    let [a, b, c, d, e] = s.clients().await;
    let name = s.name("n");
    for w in [&a, &b, &c] {
        acquired(w.claim(&name, ttl(LONG), three()).await.expect("claim"));
    }
    let spawn = |w: Client| {
        let name = name.clone();
        tokio::spawn(async move { w.wait_for(&name, ttl(LONG), three(), Wait::Forever).await })
    };
    let first = spawn(d.clone());
    sleep_ms(100).await;
    let second = spawn(e.clone());
    sleep_ms(100).await;
    assert!(!first.is_finished() && !second.is_finished(), "both wait");
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    // The leases last a minute: only the release can have woken it this soon.
    let got = tokio::time::timeout(PATIENCE, first)
        .await
        .expect("the first waiter is woken by the release")
        .expect("task");
    assert!(
        matches!(&got, Acquisition::Acquired(l) if l.owner == d.owner),
        "{got:?}"
    );
    sleep_ms(100).await;
    assert!(
        !second.is_finished(),
        "one permit freed: the second still waits"
    );
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    let got = tokio::time::timeout(PATIENCE, second)
        .await
        .expect("the second waiter is woken by the next release")
        .expect("task");
    assert!(
        matches!(&got, Acquisition::Acquired(l) if l.owner == e.owner),
        "{got:?}"
    );
}

/// permits: a backend without them refuses a permit claim with a typed error; nothing changes.
pub async fn permits_are_refused_without_the_capability(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    match a.claim(&name, ttl(LONG), three()).await {
        Err(lock_core::Error::InvalidInput(lock_core::InvalidInput::KindUnsupported { kind })) => {
            assert_eq!(kind, three());
        }
        other => panic!("expected the kind to be refused, got {other:?}"),
    }
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

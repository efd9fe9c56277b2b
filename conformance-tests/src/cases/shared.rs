//! Reader-writer locks: shared leases together, an exclusive one alone.

use super::support::*;

/// shared: readers hold together, each with its own token; a writer is refused while they read.
pub async fn readers_share_and_a_writer_is_refused(s: &Suite) {
    let [r1, r2, w] = s.clients().await;
    let name = s.name("n");
    let one = acquired(
        r1.claim(&name, ttl(LONG), Kind::Shared)
            .await
            .expect("claim"),
    );
    let two = acquired(
        r2.claim(&name, ttl(LONG), Kind::Shared)
            .await
            .expect("claim"),
    );
    assert!(
        two.token > one.token,
        "every shared grant has its own token"
    );
    assert_eq!(two.kind, Kind::Shared);
    let refused = w
        .claim(&name, ttl(LONG), Kind::Exclusive)
        .await
        .expect("claim");
    assert!(
        matches!(&refused, AcquireOutcome::Held(h) if h.kind == Kind::Shared),
        "{refused:?}"
    );
    let readers = holders(w.inspect(&name).await);
    assert_eq!(readers.len(), 2);
    assert_eq!((readers.kind(), readers.permits()), (Kind::Shared, None));
    assert_eq!(r1.release(&name).await, ReleaseOutcome::Released);
    held(
        w.claim(&name, ttl(LONG), Kind::Exclusive)
            .await
            .expect("claim"),
    );
    assert_eq!(r2.release(&name).await, ReleaseOutcome::Released);
    let writer = acquired(
        w.claim(&name, ttl(LONG), Kind::Exclusive)
            .await
            .expect("claim"),
    );
    assert!(writer.token > two.token);
}

/// shared: a reader is refused while a writer holds.
pub async fn a_writer_holds_alone(s: &Suite) {
    let [w, r] = s.clients().await;
    let name = s.name("n");
    acquired(
        w.claim(&name, ttl(LONG), Kind::Exclusive)
            .await
            .expect("claim"),
    );
    let refused = r
        .claim(&name, ttl(LONG), Kind::Shared)
        .await
        .expect("claim");
    assert!(
        matches!(&refused, AcquireOutcome::Held(h) if h.owner == w.owner && h.kind == Kind::Exclusive),
        "{refused:?}"
    );
    assert_eq!(locked(r.inspect(&name).await).owner, w.owner);
}

/// shared: a waiting writer keeps later readers out of the line; it goes once the readers leave.
pub async fn a_waiting_writer_keeps_later_readers_out(s: &Suite) {
    let [r1, w, r2] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(
        r1.claim(&name, ttl(LONG), Kind::Shared)
            .await
            .expect("claim"),
    );
    held(
        w.claim_in_line(&name, ttl(LONG), Kind::Exclusive, keep)
            .await,
    );
    behind(
        r2.claim_in_line(&name, ttl(LONG), Kind::Shared, keep).await,
        LONG,
    );
    assert_eq!(
        locked(r2.inspect(&name).await).owner,
        r1.owner,
        "the later reader is not in"
    );
    assert_eq!(r1.release(&name).await, ReleaseOutcome::Released);
    let writer = acquired(
        w.claim_in_line(&name, ttl(LONG), Kind::Exclusive, keep)
            .await,
    );
    assert_eq!(writer.kind, Kind::Exclusive);
    held(r2.claim_in_line(&name, ttl(LONG), Kind::Shared, keep).await);
    assert_eq!(w.release(&name).await, ReleaseOutcome::Released);
    acquired(r2.claim_in_line(&name, ttl(LONG), Kind::Shared, keep).await);
}

/// shared: a release by the writer wakes every reader waiting behind it.
pub async fn a_writer_release_wakes_the_waiting_readers(s: &Suite) {
    let [w, r1, r2] = s.clients().await;
    let name = s.name("n");
    acquired(
        w.claim(&name, ttl(LONG), Kind::Exclusive)
            .await
            .expect("claim"),
    );
    let spawn = |r: Client| {
        let name = name.clone();
        tokio::spawn(async move {
            r.wait_for(&name, ttl(LONG), Kind::Shared, Wait::Forever)
                .await
        })
    };
    let (one, two) = (spawn(r1.clone()), spawn(r2.clone()));
    sleep_ms(100).await;
    assert!(
        !one.is_finished() && !two.is_finished(),
        "readers wait for the writer"
    );
    assert_eq!(w.release(&name).await, ReleaseOutcome::Released);
    for reader in [one, two] {
        let got = tokio::time::timeout(PATIENCE, reader)
            .await
            .expect("every reader is woken by the writer's release")
            .expect("task");
        assert!(
            matches!(&got, Acquisition::Acquired(l) if l.kind == Kind::Shared),
            "{got:?}"
        );
    }
    assert_eq!(holders(w.inspect(&name).await).len(), 2);
}

/// shared: permits on a name held shared, or an owner asking again with another kind, are refused; nothing changes.
pub async fn another_kind_on_a_shared_name_is_refused(s: &Suite) {
    let [r, p] = s.clients().await;
    let name = s.name("n");
    let lease = acquired(
        r.claim(&name, ttl(LONG), Kind::Shared)
            .await
            .expect("claim"),
    );
    let mut asks = vec![(&r, Kind::Exclusive)];
    if s.capabilities().permits {
        asks.push((&p, Kind::permit(Permits::new(2).expect("2"))));
    }
    for (who, kind) in asks {
        match who.claim(&name, ttl(LONG), kind).await {
            Err(lock_core::Error::InvalidInput(lock_core::InvalidInput::KindMismatch {
                held_as,
                ..
            })) => assert_eq!(held_as, Kind::Shared),
            other => panic!("{kind:?} on a shared name: expected a mismatch, got {other:?}"),
        }
    }
    let holder = locked(p.inspect(&name).await);
    assert_eq!(
        (holder.token, holder.kind),
        (lease.token, Kind::Shared),
        "nothing changed"
    );
}

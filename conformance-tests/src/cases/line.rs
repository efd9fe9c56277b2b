//! The waiters' line: first come, first served.

use super::support::*;

/// line: waiters in line are served first come, first served; the one served retries idempotently.
pub async fn line_serves_waiters_in_order(s: &Suite) {
    let [a, b, c, d] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    for w in [&b, &c, &d] {
        assert_eq!(held(w.in_line(&name, ttl(LONG), keep).await).owner, a.owner);
    }
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    behind(d.in_line(&name, ttl(LONG), keep).await, LONG);
    behind(c.in_line(&name, ttl(LONG), keep).await, LONG);
    assert_eq!(
        d.inspect(&name).await,
        LockState::Open,
        "nothing but places changed"
    );
    let lease = acquired(b.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(lease.owner, b.owner);
    let again = acquired(b.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(
        again.token, lease.token,
        "a retry by the holder keeps its token"
    );
    assert_eq!(held(c.in_line(&name, ttl(LONG), keep).await).owner, b.owner);
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    behind(d.in_line(&name, ttl(LONG), keep).await, LONG);
    let next = acquired(c.in_line(&name, ttl(LONG), keep).await);
    assert!(next.token > lease.token);
    assert_eq!(c.release(&name).await, ReleaseOutcome::Released);
    acquired(d.in_line(&name, ttl(LONG), keep).await);
}

/// line: a waiter that stops asking loses its place after its patience, and rejoins at the back.
pub async fn line_place_lapses_after_patience(s: &Suite) {
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(
        b.in_line(&name, ttl(LONG), Duration::from_millis(RENEWABLE))
            .await,
    );
    held(
        c.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    behind(
        c.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
        RENEWABLE,
    );
    // b does not ask again in time: its place is gone `RENEWABLE` after it last asked, which
    // was before; asking now, it joins at the back, behind c.
    sleep_ms(RENEWABLE + 50).await;
    behind(
        b.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
        LONG,
    );
    let lease = acquired(
        c.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
    );
    assert_eq!(lease.owner, c.owner);
}

/// line: a waiter that leaves gives up its place at once, and leaving without a place changes nothing.
pub async fn leave_line_moves_the_next_up(s: &Suite) {
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(b.in_line(&name, ttl(LONG), keep).await);
    held(c.in_line(&name, ttl(LONG), keep).await);
    b.leave_line(&name).await;
    b.leave_line(&name).await;
    a.leave_line(&name).await;
    assert_eq!(
        locked(a.inspect(&name).await).owner,
        a.owner,
        "leaving changes no lease"
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    acquired(c.in_line(&name, ttl(LONG), keep).await);
}

/// line: a single try does not stand in line, and takes an open name even while others wait.
pub async fn try_acquire_does_not_wait_in_line(s: &Suite) {
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(b.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    acquired(c.acquire(&name, ttl(LONG)).await);
    assert_eq!(held(b.in_line(&name, ttl(LONG), keep).await).owner, c.owner);
    assert_eq!(c.release(&name).await, ReleaseOutcome::Released);
    acquired(b.in_line(&name, ttl(LONG), keep).await);
}

/// acquire with wait: waiters are handed the lock in the order they came.
pub async fn waiters_are_served_in_order(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    let served = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    let mut came = Vec::new();
    for _ in 0..4 {
        let w = s.client().await;
        // Joins the line now, in this order; the wait below keeps the same place.
        held(
            w.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
                .await,
        );
        came.push(w.owner.clone());
        let (name, served) = (name.clone(), served.clone());
        waiters.push(tokio::spawn(async move {
            let got = w.wait(&name, ttl(LONG), Wait::For(PATIENCE)).await;
            assert!(matches!(&got, Acquisition::Acquired(_)), "{got:?}");
            served.lock().unwrap().push(w.owner.clone());
            assert_eq!(w.release(&name).await, ReleaseOutcome::Released);
        }));
    }
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    for w in waiters {
        w.await.expect("waiter");
    }
    assert_eq!(*served.lock().unwrap(), came);
}

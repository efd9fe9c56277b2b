//! Acquire with wait: woken by a release or an expiry, and a wait that runs out.

use super::support::*;

/// acquire with wait: a waiter is handed the lock promptly when the holder releases.
pub async fn waiter_wakes_on_release(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    let waiter = {
        let (name, b) = (name.clone(), b.clone());
        tokio::spawn(async move { b.wait(&name, ttl(LONG), Wait::Forever).await })
    };
    sleep_ms(100).await;
    assert!(!waiter.is_finished(), "the waiter waits while a holds");
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    // The holder's ttl is a minute: only the release can have woken it this soon.
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("woken by the release, not the expiry")
        .expect("task");
    assert!(matches!(&got, Acquisition::Acquired(l) if l.owner == b.owner));
}

/// watch: a release wakes every plain watcher, and the turn of the first in line.
pub async fn release_wakes_watchers_and_the_first_in_line(s: &Suite) {
    let [a, b, c, w] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    // b stands first, c behind it (a plain try each where the backend keeps no line).
    held(b.in_line(&name, ttl(LONG), keep).await);
    held(c.in_line(&name, ttl(LONG), keep).await);
    let turn = b
        .lock
        .watch_turn(&name, &b.owner)
        .await
        .expect("watch_turn");
    let plain = w.lock.watch(&name).await.expect("watch");
    let (turn, plain) = (
        turn.expect("a turn to watch"),
        plain.expect("a name to watch"),
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    tokio::time::timeout(PATIENCE, turn)
        .await
        .expect("the first in line is woken by the release");
    tokio::time::timeout(PATIENCE, plain)
        .await
        .expect("a plain watcher is woken by the release, whoever stands in line");
}

/// watch: a waiter leaving the line of an open name wakes the turn of the one now first.
pub async fn leaving_the_line_wakes_the_next_turn(s: &Suite) {
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(b.in_line(&name, ttl(LONG), keep).await);
    held(c.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    // Open, b first: c watches for its turn, and b gives up its place instead of taking it.
    let turn = c
        .lock
        .watch_turn(&name, &c.owner)
        .await
        .expect("watch_turn")
        .expect("a turn to watch");
    b.leave_line(&name).await;
    tokio::time::timeout(PATIENCE, turn)
        .await
        .expect("the next in line is woken when the first leaves an open name");
    acquired(c.in_line(&name, ttl(LONG), keep).await);
}

/// acquire with wait: a waiter is handed the lock when the holder's lease expires.
pub async fn waiter_wakes_on_expiry(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    let got = b.wait(&name, ttl(LONG), Wait::For(PATIENCE)).await;
    assert!(
        matches!(&got, Acquisition::Acquired(l) if l.owner == b.owner),
        "{got:?}"
    );
}

/// acquire with wait: a wait that runs out says timed out, with the holder.
pub async fn wait_runs_out_with_the_holder(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    let got = b
        .wait(&name, ttl(LONG), Wait::For(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(&got, Acquisition::TimedOut(h) if h.owner == a.owner),
        "{got:?}"
    );
}

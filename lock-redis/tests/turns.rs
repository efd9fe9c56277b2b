//! Turns: a release publishes the waiters at the front of the line that the freed room serves,
//! and of the waiters in line only those wake; a plain watcher wakes at every release; leaving
//! the line of an open name wakes the next, of a held one no one. Waiters share one handle, so
//! one pub/sub connection hands each message to all of them at once: once the woken turns have
//! woken, the others have seen the same message and slept on.

use std::time::Duration;

use conformance_tests::kit::{RedisServer, Shared};
use lock_core::raw::{ChangeFuture, InLineOutcome};
use lock_core::{
    AcquireOutcome, Claim, Kind, Lock, LockName, OwnerId, Permits, ReleaseOutcome, Ttl,
};
use lock_redis::RedisLock;

static SERVER: Shared<RedisServer> = Shared::new(RedisServer::start);

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

/// Long enough that no place lapses during a test.
const KEEP: Duration = Duration::from_secs(60);

/// How long a wake-up that should come may take before the test calls it missing.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn connect() -> RedisLock {
    RedisLock::connect(&SERVER.with(RedisServer::url))
        .await
        .unwrap()
}

/// Whether `turn` has woken by now (one poll, no waiting).
async fn woken(turn: &mut ChangeFuture) -> bool {
    tokio::time::timeout(Duration::ZERO, turn).await.is_ok()
}

async fn turn(lock: &RedisLock, name: &LockName, owner: &OwnerId) -> ChangeFuture {
    lock.watch_turn(name, owner)
        .await
        .unwrap()
        .expect("pub/sub is on")
}

/// Returns once `waiters`' pub/sub connection has handed on every message published before
/// this call: it waits for one of its own on another name, published after them (one
/// connection gets the messages in the order the server published them).
async fn published_since(holder: &RedisLock, waiters: &RedisLock) {
    let (name, owner) = (LockName::new("turns-barrier").unwrap(), OwnerId::random());
    let change = waiters.watch(&name).await.unwrap().expect("pub/sub is on");
    holder
        .try_acquire(Claim::new(&name, &owner, ttl()))
        .await
        .unwrap();
    holder.release(&name, &owner).await.unwrap();
    tokio::time::timeout(PROMPTLY, change)
        .await
        .expect("the barrier's message arrives");
}

async fn acquired(lock: &RedisLock, claim: Claim<'_>) {
    let outcome = lock.try_acquire(claim).await.unwrap();
    assert!(
        matches!(outcome, AcquireOutcome::Acquired(_)),
        "{outcome:?}"
    );
}

async fn in_line(lock: &RedisLock, claim: Claim<'_>) {
    let outcome = lock.try_acquire_in_line(claim, KEEP).await.unwrap();
    assert!(matches!(outcome, InLineOutcome::Held(_)), "{outcome:?}");
}

#[tokio::test]
async fn a_release_wakes_only_the_turns_it_serves_and_a_leave_the_next() {
    // Names a payload of newline-separated owners must not confuse.
    for raw in ["job", "a name\nwith a newline?", "{braces}"] {
        let Ok(name) = LockName::new(raw) else {
            continue; // names have no control characters
        };
        let (holder, waiters, watcher) = (connect().await, connect().await, connect().await);
        let [a, b, c, d] = [(); 4].map(|()| OwnerId::random());
        holder.force_release(&name).await.unwrap();
        acquired(&holder, Claim::new(&name, &a, ttl())).await;
        for owner in [&b, &c, &d] {
            in_line(&waiters, Claim::new(&name, owner, ttl())).await;
        }
        let (first, mut second, mut third) = (
            turn(&waiters, &name, &b).await,
            turn(&waiters, &name, &c).await,
            turn(&waiters, &name, &d).await,
        );
        let plain = watcher.watch(&name).await.unwrap().expect("pub/sub is on");
        assert_eq!(
            holder.release(&name, &a).await.unwrap(),
            ReleaseOutcome::Released
        );
        tokio::time::timeout(PROMPTLY, first)
            .await
            .unwrap_or_else(|_| panic!("{raw:?}: the first in line is woken"));
        tokio::time::timeout(PROMPTLY, plain)
            .await
            .unwrap_or_else(|_| panic!("{raw:?}: a plain watcher is woken"));
        assert!(!woken(&mut second).await, "{raw:?}: the second slept on");
        assert!(!woken(&mut third).await, "{raw:?}: the third slept on");

        // b gives up its place instead of taking the lock: c is first now.
        waiters.leave_line(&name, &b).await.unwrap();
        tokio::time::timeout(PROMPTLY, second)
            .await
            .unwrap_or_else(|_| panic!("{raw:?}: the next in line is woken by the leave"));
        assert!(!woken(&mut third).await, "{raw:?}: the third slept on");
        let outcome = waiters
            .try_acquire_in_line(Claim::new(&name, &c, ttl()), KEEP)
            .await
            .unwrap();
        assert!(matches!(outcome, InLineOutcome::Acquired(_)), "{outcome:?}");

        // Leaving the line of a held name wakes no one.
        waiters.leave_line(&name, &d).await.unwrap();
        published_since(&holder, &waiters).await;
        assert!(!woken(&mut third).await, "{raw:?}: nothing opened");
        waiters.release(&name, &c).await.unwrap();
    }
}

/// A permit freed wakes the one waiter it serves; an exclusive lease freed wakes the readers
/// at the front up to the first writer, and not the writer nor the readers behind it.
#[tokio::test]
async fn a_release_wakes_as_many_as_the_room_serves() {
    let (holder, waiters) = (connect().await, connect().await);
    let two = Kind::permit(Permits::new(2).unwrap());
    let name = LockName::new("two-permits").unwrap();
    let [a, b, c, d, e] = [(); 5].map(|()| OwnerId::random());
    acquired(&holder, Claim::new(&name, &a, ttl()).with_kind(two)).await;
    acquired(&holder, Claim::new(&name, &b, ttl()).with_kind(two)).await;
    for owner in [&c, &d, &e] {
        in_line(&waiters, Claim::new(&name, owner, ttl()).with_kind(two)).await;
    }
    let (c_turn, mut d_turn, mut e_turn) = (
        turn(&waiters, &name, &c).await,
        turn(&waiters, &name, &d).await,
        turn(&waiters, &name, &e).await,
    );
    holder.release(&name, &a).await.unwrap();
    tokio::time::timeout(PROMPTLY, c_turn)
        .await
        .expect("one permit free: the first waiter is woken");
    assert!(!woken(&mut d_turn).await, "one permit serves one waiter");
    assert!(!woken(&mut e_turn).await);

    let name = LockName::new("readers-and-a-writer").unwrap();
    let [w, r1, r2, w2, r3] = [(); 5].map(|()| OwnerId::random());
    acquired(&holder, Claim::new(&name, &w, ttl())).await;
    in_line(
        &waiters,
        Claim::new(&name, &r1, ttl()).with_kind(Kind::Shared),
    )
    .await;
    in_line(
        &waiters,
        Claim::new(&name, &r2, ttl()).with_kind(Kind::Shared),
    )
    .await;
    in_line(&waiters, Claim::new(&name, &w2, ttl())).await;
    in_line(
        &waiters,
        Claim::new(&name, &r3, ttl()).with_kind(Kind::Shared),
    )
    .await;
    let (r1_turn, r2_turn, mut w2_turn, mut r3_turn) = (
        turn(&waiters, &name, &r1).await,
        turn(&waiters, &name, &r2).await,
        turn(&waiters, &name, &w2).await,
        turn(&waiters, &name, &r3).await,
    );
    holder.release(&name, &w).await.unwrap();
    for (turn, who) in [(r1_turn, "r1"), (r2_turn, "r2")] {
        tokio::time::timeout(PROMPTLY, turn)
            .await
            .unwrap_or_else(|_| panic!("the writer gone: reader {who} is woken"));
    }
    assert!(
        !woken(&mut w2_turn).await,
        "the waiting writer waits for the readers"
    );
    assert!(
        !woken(&mut r3_turn).await,
        "a reader behind the waiting writer is not let past it"
    );
}

/// A waiting writer leaves the line of a name readers hold: the readers waiting behind it fit
/// now. Over 32 of them is too many to name, so every waiter wakes; none may be left asleep.
#[tokio::test]
async fn a_leave_that_frees_more_waiters_than_it_names_wakes_them_all() {
    let (holder, waiters) = (connect().await, connect().await);
    let name = LockName::new("many-readers-behind-a-writer").unwrap();
    let reader = OwnerId::random();
    acquired(
        &holder,
        Claim::new(&name, &reader, ttl()).with_kind(Kind::Shared),
    )
    .await;
    let writer = OwnerId::random();
    in_line(&waiters, Claim::new(&name, &writer, ttl())).await;
    let behind: Vec<OwnerId> = (0..40).map(|_| OwnerId::random()).collect();
    let mut turns = Vec::new();
    for owner in &behind {
        let outcome = waiters
            .try_acquire_in_line(
                Claim::new(&name, owner, ttl()).with_kind(Kind::Shared),
                KEEP,
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, InLineOutcome::Behind { .. }),
            "behind the writer: {outcome:?}"
        );
        turns.push(turn(&waiters, &name, owner).await);
    }
    waiters.leave_line(&name, &writer).await.unwrap();
    for (i, turn) in turns.into_iter().enumerate() {
        tokio::time::timeout(PROMPTLY, turn)
            .await
            .unwrap_or_else(|_| panic!("reader {i} behind the writer that left is woken"));
    }
}

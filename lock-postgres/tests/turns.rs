//! Turns in lease mode: a release's NOTIFY names the owner first in line, and of the waiters
//! in line only that one wakes; a waiter leaving an open name's line wakes the next. Waiters
//! here share one handle, so one LISTEN connection hands each NOTIFY to all of them at once:
//! once the first's turn has woken, the others' have seen the same NOTIFY and stayed asleep.

use std::time::Duration;

use conformance_tests::kit::PostgresServer;
use lock_core::raw::{ChangeFuture, InLineOutcome};
use lock_core::{AcquireOutcome, Claim, Lock, LockName, OwnerId, ReleaseOutcome, Ttl};
use lock_postgres::LeaseLock;

static SERVER: conformance_tests::kit::Shared<PostgresServer> =
    conformance_tests::kit::Shared::new(PostgresServer::start);

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

/// Long enough that no place lapses during a test.
const KEEP: Duration = Duration::from_secs(60);

/// How long a wake-up that should come may take before the test calls it missing.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Whether `turn` has woken by now (one poll, no waiting).
async fn woken(turn: &mut ChangeFuture) -> bool {
    tokio::time::timeout(Duration::ZERO, turn).await.is_ok()
}

async fn turn(lock: &LeaseLock, name: &LockName, owner: &OwnerId) -> ChangeFuture {
    lock.watch_turn(name, owner)
        .await
        .unwrap()
        .expect("LISTEN is on")
}

/// Returns once `waiters`' LISTEN connection has handed on every NOTIFY committed before
/// this call: it waits for one of its own, sent after them on another name (a connection
/// gets the notifications of committed transactions in the order they committed).
async fn notified_since(holder: &LeaseLock, waiters: &LeaseLock) {
    let (name, owner) = (LockName::new("turns-barrier").unwrap(), OwnerId::random());
    let change = waiters.watch(&name).await.unwrap().expect("LISTEN is on");
    holder
        .try_acquire(Claim::new(&name, &owner, ttl()))
        .await
        .unwrap();
    holder.release(&name, &owner).await.unwrap();
    tokio::time::timeout(PROMPTLY, change)
        .await
        .expect("the barrier's NOTIFY arrives");
}

/// How the holder opens the name: a release or a force release.
#[derive(Clone, Copy, Debug)]
enum Opening {
    Release,
    Force,
}

#[tokio::test]
async fn an_opening_wakes_only_the_first_in_lines_turn_and_a_leave_the_next() {
    let url = SERVER.with(PostgresServer::url);
    // Names that a payload of name + newline + owner must not confuse.
    let names = ["job", "a name with spaces", "'; --", "🔒 名前\u{2028}x"];
    for (raw, opening) in names
        .iter()
        .flat_map(|raw| [(raw, Opening::Release), (raw, Opening::Force)])
    {
        let case = format!("{raw:?} {opening:?}");
        let name = LockName::new(*raw).unwrap();
        let holder = LeaseLock::connect(&url).await.unwrap();
        let waiters = LeaseLock::connect(&url).await.unwrap();
        let watcher = LeaseLock::connect(&url).await.unwrap();
        let [a, b, c, d] = [(); 4].map(|()| OwnerId::random());
        holder.force_release(&name).await.unwrap();
        assert!(matches!(
            holder
                .try_acquire(Claim::new(&name, &a, ttl()))
                .await
                .unwrap(),
            AcquireOutcome::Acquired(_)
        ));
        for owner in [&b, &c, &d] {
            let outcome = waiters
                .try_acquire_in_line(Claim::new(&name, owner, ttl()), KEEP)
                .await
                .unwrap();
            assert!(
                matches!(outcome, InLineOutcome::Held(_)),
                "{case}: {outcome:?}"
            );
        }
        let (first, mut second, mut third) = (
            turn(&waiters, &name, &b).await,
            turn(&waiters, &name, &c).await,
            turn(&waiters, &name, &d).await,
        );
        let plain = watcher.watch(&name).await.unwrap().expect("LISTEN is on");

        let opened = match opening {
            Opening::Release => holder.release(&name, &a).await.unwrap(),
            Opening::Force => holder.force_release(&name).await.unwrap(),
        };
        assert_eq!(opened, ReleaseOutcome::Released, "{case}");
        tokio::time::timeout(PROMPTLY, first)
            .await
            .unwrap_or_else(|_| panic!("{case}: the first in line is woken"));
        tokio::time::timeout(PROMPTLY, plain)
            .await
            .unwrap_or_else(|_| panic!("{case}: a plain watcher is woken"));
        assert!(!woken(&mut second).await, "{case}: the second slept on");
        assert!(!woken(&mut third).await, "{case}: the third slept on");

        // b gives up its place instead of taking the lock: c is first now.
        waiters.leave_line(&name, &b).await.unwrap();
        tokio::time::timeout(PROMPTLY, second)
            .await
            .unwrap_or_else(|_| panic!("{case}: the next in line is woken by the leave"));
        assert!(!woken(&mut third).await, "{case}: the third slept on");
        assert!(matches!(
            waiters
                .try_acquire_in_line(Claim::new(&name, &c, ttl()), KEEP)
                .await
                .unwrap(),
            InLineOutcome::Acquired(_)
        ));

        // Leaving the line of a held name wakes no one.
        waiters.leave_line(&name, &d).await.unwrap();
        notified_since(&holder, &waiters).await;
        assert!(!woken(&mut third).await, "{case}: nothing opened");
        waiters.release(&name, &c).await.unwrap();
    }
}

/// Found by `lock-bench` (a 200 ms stall when four waiters started at once): a place's
/// `joined` is its statement's start, but it shows once that statement commits, so a place
/// that joined earlier can show only after a release has named the one it then stands ahead
/// of. The waiter named finds it ahead while the name is open, and passes the turn on.
#[tokio::test]
async fn a_waiter_woken_for_a_turn_that_is_not_its_own_passes_it_on() {
    let url = SERVER.with(PostgresServer::url);
    let name = LockName::new("late-place").unwrap();
    let holder = LeaseLock::connect(&url).await.unwrap();
    let waiters = LeaseLock::connect(&url).await.unwrap();
    let [a, b, c] = [(); 3].map(|()| OwnerId::random());
    holder.force_release(&name).await.unwrap();
    holder
        .try_acquire(Claim::new(&name, &a, ttl()))
        .await
        .unwrap();
    let outcome = waiters
        .try_acquire_in_line(Claim::new(&name, &b, ttl()), KEEP)
        .await
        .unwrap();
    assert!(matches!(outcome, InLineOutcome::Held(_)), "{outcome:?}");
    let (b_turn, c_turn) = (
        turn(&waiters, &name, &b).await,
        turn(&waiters, &name, &c).await,
    );
    assert_eq!(
        holder.release(&name, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    tokio::time::timeout(PROMPTLY, b_turn)
        .await
        .expect("the release names b");
    // c's place commits only now, joined before b's.
    SERVER.with(|server| {
        server.psql(&format!(
            "INSERT INTO lock_leases_line (name, owner, joined, kept_until) \
             SELECT 'late-place', '{c}', joined - interval '1 second', \
                    clock_timestamp() + interval '60 seconds' \
             FROM lock_leases_line WHERE name = 'late-place' AND owner = '{b}'",
            c = c.as_str(),
            b = b.as_str()
        ))
    });
    let outcome = waiters
        .try_acquire_in_line(Claim::new(&name, &b, ttl()), KEEP)
        .await
        .unwrap();
    assert!(
        matches!(outcome, InLineOutcome::Behind { .. }),
        "{outcome:?}"
    );
    tokio::time::timeout(PROMPTLY, c_turn)
        .await
        .expect("b, finding c ahead of it on an open name, wakes c");
    let outcome = waiters
        .try_acquire_in_line(Claim::new(&name, &c, ttl()), KEEP)
        .await
        .unwrap();
    assert!(matches!(outcome, InLineOutcome::Acquired(_)), "{outcome:?}");
}

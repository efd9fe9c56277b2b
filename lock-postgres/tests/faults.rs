//! Faults a Postgres lock must survive, each on a server of its own: connections killed by
//! the server, a crash and restart mid-hold, a server that stops answering, and a holder that
//! stops renewing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use conformance_tests::kit::PostgresServer;
use lock_core::{
    AcquireOptions, AcquireOutcome, Acquisition, Claim, Error, Guard, Lease, Lock, LockName,
    LockState, LossReason, Operation, OwnerId, ReleaseOutcome, RenewOutcome, Ttl, Wait,
};
use lock_postgres::LeaseLock;

fn ttl(millis: u64) -> Ttl {
    Ttl::from_millis(millis).unwrap()
}

fn name(label: &str) -> LockName {
    LockName::new(format!("{}-{label}", &OwnerId::random().as_str()[..8])).unwrap()
}

async fn connect(url: &str) -> Arc<dyn Lock> {
    lock_postgres::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

fn acquired(outcome: AcquireOutcome) -> Lease {
    match outcome {
        AcquireOutcome::Acquired(lease) => lease,
        other => panic!("expected acquired, got {other:?}"),
    }
}

async fn guard(lock: &Arc<dyn Lock>, name: &LockName, ttl_ms: u64) -> Guard {
    let options = AcquireOptions::new().ttl(ttl(ttl_ms)).wait(Wait::No);
    match Guard::acquire(lock.clone(), name.clone(), options)
        .await
        .unwrap()
    {
        Acquisition::Acquired(guard) => guard,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// Ends every server session of the handles that connected as `application_name`.
fn terminate_sessions(server: &PostgresServer, application: &str) -> usize {
    let killed = server.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = '{application}'"
    ));
    killed.parse().unwrap()
}

/// `result` is [`Error::Unreachable`] for `op` on Postgres, naming the server's port, and came
/// within `within` of `started`.
fn assert_unreachable(
    result: Result<impl std::fmt::Debug, Error>,
    op: Operation,
    port: u16,
    within: Duration,
    started: Instant,
) {
    let elapsed = started.elapsed();
    match result {
        Err(Error::Unreachable {
            message,
            operation,
            backend,
            ..
        }) => {
            assert_eq!((operation, backend), (op, "Postgres"), "{message}");
            assert!(
                message.contains(&port.to_string()),
                "the message names the server: {message}"
            );
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(
        elapsed < within,
        "gave up after {elapsed:?}, not within {within:?}"
    );
}

/// The server kills the handle's connections (pool and LISTEN) while a guard holds a lease:
/// the next operation reconnects, and the guard does not report a loss, since the lease never
/// lapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_replaced_and_a_live_lease_is_not_lost() {
    let server = PostgresServer::start();
    let url = format!(
        "{}?application_name=faults-killed&connect_timeout=2",
        server.url()
    );
    let (lock, other) = (connect(&url).await, connect(&server.url()).await);
    let name = name("killed");
    let guard = guard(&lock, &name, 1500).await;
    // A waiter on the same handle keeps a LISTEN connection open, to be killed too.
    let waiter = {
        let (lock, name) = (lock.clone(), name.clone());
        tokio::spawn(async move {
            lock_core::acquire(
                &*lock,
                Claim::new(&name, &OwnerId::random(), ttl(60_000)),
                Wait::Forever,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut killed = 0;
    for _ in 0..4 {
        killed += tokio::task::block_in_place(|| terminate_sessions(&server, "faults-killed"));
        // The very next operation on the handle works, on a new connection.
        match lock
            .inspect(&name)
            .await
            .expect("inspect right after the kill")
        {
            LockState::Locked(hs) => assert_eq!(hs.first().token, guard.token()),
            other => panic!("expected locked, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(killed >= 4, "sessions were killed: {killed}");
    assert_eq!(guard.loss(), None, "the lease never lapsed");
    assert!(!waiter.is_finished(), "the waiter still waits");
    match other.inspect(&name).await.unwrap() {
        LockState::Locked(hs) => assert_eq!(hs.first().token, guard.token()),
        other => panic!("expected locked, got {other:?}"),
    }
    // And the waiter, whose LISTEN connection was killed, still hears the release.
    let released = Instant::now();
    assert_eq!(guard.release().await.unwrap(), ReleaseOutcome::Released);
    let got = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is handed the lock")
        .unwrap()
        .unwrap();
    assert!(matches!(got, Acquisition::Acquired(_)), "{got:?}");
    assert!(
        released.elapsed() < Duration::from_secs(2),
        "woken by the release: {:?}",
        released.elapsed()
    );
}

/// A crash and restart while a lease is held: operations fail clearly while the server is
/// down, then work again on the same handle; the lease (committed before the crash) is still
/// there, and the next token is higher.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_hold_fails_clearly_then_heals_and_tokens_rise() {
    let mut server = PostgresServer::start();
    let url = format!("{}?connect_timeout=1", server.url());
    let lock = connect(&url).await;
    let (a, b) = (OwnerId::random(), OwnerId::random());
    let name = name("restart");
    let first = acquired(
        lock.try_acquire(Claim::new(&name, &a, ttl(60_000)))
            .await
            .unwrap(),
    );
    tokio::task::block_in_place(|| server.kill());
    for _ in 0..2 {
        let started = Instant::now();
        let result = lock.try_acquire(Claim::new(&name, &b, ttl(60_000))).await;
        assert_unreachable(
            result,
            Operation::TryAcquire,
            server.port(),
            Duration::from_secs(4),
            started,
        );
    }
    let started = Instant::now();
    assert_unreachable(
        lock.inspect(&name).await,
        Operation::Inspect,
        server.port(),
        Duration::from_secs(4),
        started,
    );
    tokio::task::block_in_place(|| server.restart());
    // The same handle works again; the lease survived the crash (a logged table, synchronous
    // commit).
    match lock
        .inspect(&name)
        .await
        .expect("inspect after the restart")
    {
        LockState::Locked(hs) => assert_eq!(
            (hs.first().owner.clone(), hs.first().token),
            (a.clone(), first.token)
        ),
        other => panic!("expected the lease from before the crash, got {other:?}"),
    }
    assert!(matches!(
        lock.renew(&name, &a, ttl(60_000)).await.unwrap(),
        RenewOutcome::Renewed(_)
    ));
    assert_eq!(
        lock.release(&name, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    let second = acquired(
        lock.try_acquire(Claim::new(&name, &b, ttl(60_000)))
            .await
            .unwrap(),
    );
    assert!(
        second.token > first.token,
        "{:?} after {:?}",
        second.token,
        first.token
    );
    // Acknowledged acquisitions survive a crash right after them: tokens never go back.
    assert_eq!(
        lock.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    let third = acquired(
        lock.try_acquire(Claim::new(&name, &a, ttl(60_000)))
            .await
            .unwrap(),
    );
    tokio::task::block_in_place(|| server.kill());
    tokio::task::block_in_place(|| server.restart());
    assert_eq!(
        lock.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    let fourth = acquired(
        lock.try_acquire(Claim::new(&name, &b, ttl(60_000)))
            .await
            .unwrap(),
    );
    assert!(
        first.token < second.token && second.token < third.token && third.token < fourth.token,
        "{:?}",
        [first.token, second.token, third.token, fourth.token]
    );
}

/// A guard whose server is down longer than its ttl says so (the lease really lapsed: the
/// server's clock ran on); after the restart another client acquires with a higher token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guard_reports_a_lease_that_lapsed_while_the_server_was_down() {
    let mut server = PostgresServer::start();
    let url = format!("{}?connect_timeout=1", server.url());
    let lock = connect(&url).await;
    let name = name("lapsed");
    let guard = guard(&lock, &name, 1000).await;
    let token = guard.token();
    tokio::task::block_in_place(|| server.kill());
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the guard reports the loss by the lease's expiry");
    assert!(
        matches!(reason, LossReason::Unreachable { .. }),
        "{reason:?}"
    );
    tokio::task::block_in_place(|| server.restart());
    let other = connect(&url).await;
    assert_eq!(other.inspect(&name).await.unwrap(), LockState::Open);
    let next = acquired(
        other
            .try_acquire(Claim::new(&name, &OwnerId::random(), ttl(60_000)))
            .await
            .unwrap(),
    );
    assert!(next.token > token);
    assert_eq!(guard.release().await.unwrap(), ReleaseOutcome::NotOwner);
}

/// A server that stops answering (SIGSTOP) makes operations fail within the timeout instead
/// of hanging; once it goes on, the same handle works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_is_an_error_in_time_not_a_hang() {
    let server = PostgresServer::start();
    let url = format!("{}?connect_timeout=1", server.url());
    let lock = connect(&url).await;
    let owner = OwnerId::random();
    let name = name("paused");
    acquired(
        lock.try_acquire(Claim::new(&name, &owner, ttl(60_000)))
            .await
            .unwrap(),
    );
    server.pause();
    let started = Instant::now();
    assert_unreachable(
        lock.renew(&name, &owner, ttl(60_000)).await,
        Operation::Renew,
        server.port(),
        Duration::from_secs(3),
        started,
    );
    let started = Instant::now();
    let connecting = LeaseLock::connect(&url).await;
    assert_unreachable(
        connecting,
        Operation::Connect,
        server.port(),
        Duration::from_secs(3),
        started,
    );
    server.resume();
    assert!(matches!(
        lock.renew(&name, &owner, ttl(60_000)).await.unwrap(),
        RenewOutcome::Renewed(_)
    ));
    assert_eq!(
        lock.release(&name, &owner).await.unwrap(),
        ReleaseOutcome::Released
    );
}

/// A holder that stops renewing (paused, say) loses its lease at the ttl: another acquires,
/// with a higher token, and the old holder's renew says lost and its release not owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_paused_past_its_ttl_loses_the_lease() {
    let server = PostgresServer::start();
    let (stale, fresh) = (connect(&server.url()).await, connect(&server.url()).await);
    let (a, b) = (OwnerId::random(), OwnerId::random());
    let name = name("paused-holder");
    let first = acquired(
        stale
            .try_acquire(Claim::new(&name, &a, ttl(300)))
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let second = acquired(
        fresh
            .try_acquire(Claim::new(&name, &b, ttl(60_000)))
            .await
            .unwrap(),
    );
    assert!(second.token > first.token);
    assert_eq!(
        stale.renew(&name, &a, ttl(60_000)).await.unwrap(),
        RenewOutcome::Lost
    );
    assert_eq!(
        stale.release(&name, &a).await.unwrap(),
        ReleaseOutcome::NotOwner
    );
    match stale.inspect(&name).await.unwrap() {
        LockState::Locked(hs) => assert_eq!(
            (hs.first().owner.clone(), hs.first().token),
            (b, second.token)
        ),
        other => panic!("expected b's lease, got {other:?}"),
    }
}

/// Session mode: a restart ends every session lock; the holder's renew says lost, and the
/// same handles acquire again afterwards with a higher token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_locks_end_with_a_restart_and_tokens_still_rise() {
    let mut server = PostgresServer::start();
    let url = format!("{}?mode=session&connect_timeout=1", server.url());
    let (lock, other) = (connect(&url).await, connect(&url).await);
    let (a, b) = (OwnerId::random(), OwnerId::random());
    let name = name("session-restart");
    let first = acquired(
        lock.try_acquire(Claim::new(&name, &a, ttl(1000)))
            .await
            .unwrap(),
    );
    assert!(
        matches!(other.try_acquire(Claim::new(&name, &b, ttl(1000))).await.unwrap(), AcquireOutcome::Held(h) if h.owner == a)
    );
    tokio::task::block_in_place(|| server.restart());
    assert_eq!(
        lock.renew(&name, &a, ttl(1000)).await.unwrap(),
        RenewOutcome::Lost
    );
    let second = acquired(
        other
            .try_acquire(Claim::new(&name, &b, ttl(1000)))
            .await
            .unwrap(),
    );
    assert!(second.token > first.token);
    assert_eq!(
        lock.release(&name, &a).await.unwrap(),
        ReleaseOutcome::NotOwner
    );
    // A killed holder session (what force release does) frees the lock for a waiter at once.
    let waiter = {
        let (lock, name, a) = (lock.clone(), name.clone(), a.clone());
        tokio::spawn(async move {
            lock_core::acquire(&*lock, Claim::new(&name, &a, ttl(1000)), Wait::Forever).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    assert_eq!(
        lock.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(&got, Acquisition::Acquired(l) if l.token > second.token),
        "{got:?}"
    );
    assert_eq!(
        other.renew(&name, &b, ttl(1000)).await.unwrap(),
        RenewOutcome::Lost
    );
}

/// Session mode: a try acquire cancelled at any point leaves no lock behind (its connection
/// is closed, never returned to the pool still holding the lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_session_acquire_leaves_no_lock() {
    let server = PostgresServer::start();
    let url = format!("{}?mode=session", server.url());
    let (lock, other) = (connect(&url).await, connect(&url).await);
    let name = name("cancelled");
    let owner = OwnerId::random();
    // Warm the pools, so that cancellations land on statements rather than connects.
    acquired(
        lock.try_acquire(Claim::new(&name, &owner, ttl(1000)))
            .await
            .unwrap(),
    );
    assert_eq!(
        lock.release(&name, &owner).await.unwrap(),
        ReleaseOutcome::Released
    );
    let open_soon = || async {
        let deadline = Instant::now() + Duration::from_secs(3);
        while other.inspect(&name).await.unwrap() != LockState::Open {
            assert!(
                Instant::now() < deadline,
                "a lock outlived a cancelled acquire"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    // Cancelled while the statement is with a stalled server, which then takes the lock.
    server.pause();
    let cut = tokio::time::timeout(
        Duration::from_millis(300),
        lock.try_acquire(Claim::new(&name, &OwnerId::random(), ttl(1000))),
    )
    .await;
    assert!(cut.is_err(), "cancelled: {cut:?}");
    server.resume();
    open_soon().await;
    // Cancelled after a varying number of turns of the runtime.
    let mut cancelled = 0;
    for turns in 0..40 {
        let owner = OwnerId::random();
        tokio::select! {
            biased;
            got = lock.try_acquire(Claim::new(&name, &owner, ttl(1000))) => {
                acquired(got.unwrap());
                assert_eq!(lock.release(&name, &owner).await.unwrap(), ReleaseOutcome::Released);
            }
            () = async { for _ in 0..turns { tokio::task::yield_now().await } } => cancelled += 1,
        }
        open_soon().await;
    }
    assert!(cancelled > 0, "some calls were cancelled");
    acquired(
        other
            .try_acquire(Claim::new(&name, &OwnerId::random(), ttl(1000)))
            .await
            .unwrap(),
    );
}

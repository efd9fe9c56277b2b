//! Faults a lock must survive, on real `redis-server`s: killed with SIGKILL and restarted
//! without its data, paused with SIGSTOP past a lease's ttl, and a holder *process* paused
//! past its ttl while another client takes the lock.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use conformance_tests::kit::RedisServer;
use lock_core::{
    AcquireOptions, AcquireOutcome, Acquisition, Claim, Error, FencingToken, Guard, Lock, LockName,
    LockState, LossReason, Operation, OwnerId, ReleaseOutcome, RenewOutcome, Ttl, Wait,
};
use lock_redis::RedisLock;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn ttl(ms: u64) -> Ttl {
    Ttl::from_millis(ms).expect("a valid ttl")
}

fn name(label: &str) -> LockName {
    LockName::new(format!("{label}-{}", &OwnerId::random().as_str()[..8])).expect("a name")
}

/// A URL with short timeouts, so that a dead server is noticed quickly.
fn quick(server: &RedisServer) -> String {
    format!("{}?connect_timeout=1s&response_timeout=500ms", server.url())
}

async fn connect(url: &str) -> RedisLock {
    RedisLock::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

fn acquired(outcome: AcquireOutcome) -> FencingToken {
    match outcome {
        AcquireOutcome::Acquired(lease) => lease.token,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// Runs a blocking test-kit call (start, kill, restart) without stalling the runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_server_loses_leases_but_not_the_handle_nor_token_order() {
    let mut server = blocking(RedisServer::start);
    let url = quick(&server);
    let (lock, idle) = (connect(&url).await, connect(&url).await);
    let (n, held, guarded) = (name("n"), name("held"), name("guarded"));
    let (a, b) = (OwnerId::random(), OwnerId::random());

    // Tokens handed out before the crash: across release, expiry and force release.
    let mut tokens = Vec::new();
    tokens.push(acquired(
        lock.try_acquire(Claim::new(&n, &a, ttl(60_000)))
            .await
            .unwrap(),
    ));
    assert_eq!(
        lock.release(&n, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    tokens.push(acquired(
        lock.try_acquire(Claim::new(&n, &b, ttl(60_000)))
            .await
            .unwrap(),
    ));
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::Released
    );
    tokens.push(acquired(
        lock.try_acquire(Claim::new(&n, &a, ttl(60_000)))
            .await
            .unwrap(),
    ));
    tokens.push(acquired(
        lock.try_acquire(Claim::new(&held, &a, ttl(60_000)))
            .await
            .unwrap(),
    ));
    let options = AcquireOptions::new().ttl(ttl(1_000)).wait(Wait::No);
    let guard = Guard::acquire(Arc::new(lock.clone()), guarded.clone(), options)
        .await
        .unwrap()
        .acquired()
        .expect("the guarded name is free");
    tokens.push(guard.token());

    blocking(|| server.kill());
    let started = Instant::now();
    let down = lock.renew(&held, &a, ttl(60_000)).await;
    assert!(
        matches!(
            down,
            Err(Error::Unreachable {
                operation: Operation::Renew,
                backend: "Redis",
                ..
            })
        ),
        "{down:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the guard says its lease is lost within its ttl and a bit");
    assert!(
        matches!(reason, LossReason::Unreachable { .. } | LossReason::Refused),
        "{reason:?}"
    );

    blocking(|| server.restart());
    // The same handles, not rebuilt: one that failed while the server was down, one that
    // was idle. The restart lost every lease, so the holder's renew says lost.
    assert_eq!(
        lock.renew(&held, &a, ttl(60_000)).await.unwrap(),
        RenewOutcome::Lost
    );
    assert_eq!(idle.inspect(&held).await.unwrap(), LockState::Open);
    assert_eq!(
        idle.release(&n, &a).await.unwrap(),
        ReleaseOutcome::NotLocked
    );
    assert_eq!(guard.release().await.unwrap(), ReleaseOutcome::NotLocked);

    // Tokens go on above every token before the crash, although the counters are gone.
    let highest = *tokens.iter().max().unwrap();
    for name in [&n, &held, &guarded] {
        let token = acquired(
            idle.try_acquire(Claim::new(name, &b, ttl(60_000)))
                .await
                .unwrap(),
        );
        assert!(token > highest, "{name:?}: {token} after {tokens:?}");
    }
    let again = lock
        .try_acquire(Claim::new(&n, &a, ttl(60_000)))
        .await
        .unwrap();
    assert!(
        matches!(again, AcquireOutcome::Held(h) if h.owner == b),
        "b holds n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_woken_on_a_new_pubsub_connection_after_a_restart() {
    let mut server = blocking(RedisServer::start);
    let url = quick(&server);
    let (waiting, holding) = (connect(&url).await, connect(&url).await);
    let n = name("n");
    let (a, b) = (OwnerId::random(), OwnerId::random());
    // Open the waiter's pub/sub connection before the crash.
    acquired(
        holding
            .try_acquire(Claim::new(&n, &a, ttl(60_000)))
            .await
            .unwrap(),
    );
    let got = lock_core::acquire(
        &waiting,
        Claim::new(&n, &b, ttl(60_000)),
        Wait::For(Duration::from_millis(100)),
    );
    assert!(matches!(got.await.unwrap(), Acquisition::TimedOut(_)));

    blocking(|| server.kill());
    blocking(|| server.restart());
    acquired(
        holding
            .try_acquire(Claim::new(&n, &a, ttl(60_000)))
            .await
            .unwrap(),
    );
    let waiter = {
        let (waiting, n, b) = (waiting.clone(), n.clone(), b.clone());
        tokio::spawn(async move {
            lock_core::acquire(&waiting, Claim::new(&n, &b, ttl(60_000)), Wait::Forever).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "a holds it for a minute");
    assert_eq!(
        holding.release(&n, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by the release, not the minute-long ttl")
        .unwrap()
        .unwrap();
    assert!(matches!(got, Acquisition::Acquired(l) if l.owner == b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_paused_past_the_ttl_comes_back_without_the_lease() {
    let server = blocking(RedisServer::start);
    let url = quick(&server);
    let (holder, other) = (connect(&url).await, connect(&url).await);
    let (n, guarded) = (name("n"), name("guarded"));
    let (a, b) = (OwnerId::random(), OwnerId::random());
    let first = acquired(
        holder
            .try_acquire(Claim::new(&n, &a, ttl(300)))
            .await
            .unwrap(),
    );
    let options = AcquireOptions::new().ttl(ttl(600)).wait(Wait::No);
    let guard = Guard::acquire(Arc::new(holder.clone()), guarded, options)
        .await
        .unwrap()
        .acquired()
        .expect("free");

    server.pause();
    let started = Instant::now();
    let stalled = holder.renew(&n, &a, ttl(300)).await;
    assert!(
        matches!(stalled, Err(Error::Unreachable { .. })),
        "{stalled:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // Many tasks of the handle at once: one of them tries to reconnect (and waits out the
    // connect timeout), the others get its answer instead of each waiting in turn.
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (holder, n) = (holder.clone(), n.clone());
            tokio::spawn(async move { holder.inspect(&n).await })
        })
        .collect();
    for task in tasks {
        let got = task.await.unwrap();
        let e = got.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert_eq!(e.operation(), Some(Operation::Inspect), "{e}");
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the guard gives up once its ttl passed without a renewal");
    assert!(
        matches!(reason, LossReason::Unreachable { .. }),
        "{reason:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.resume();

    // The server's clock went on while it was stopped: the lease is gone.
    assert_eq!(
        holder.renew(&n, &a, ttl(300)).await.unwrap(),
        RenewOutcome::Lost
    );
    let next = acquired(
        other
            .try_acquire(Claim::new(&n, &b, ttl(60_000)))
            .await
            .unwrap(),
    );
    assert!(next > first, "{next} after {first}");
    assert_eq!(
        holder.renew(&n, &a, ttl(300)).await.unwrap(),
        RenewOutcome::Lost
    );
    assert_eq!(
        holder.release(&n, &a).await.unwrap(),
        ReleaseOutcome::NotOwner
    );
    match holder.inspect(&n).await.unwrap() {
        LockState::Locked(hs) => {
            assert_eq!((hs.first().owner.clone(), hs.first().token), (b, next))
        }
        other => panic!("expected b's lease, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_stopped_renewing_is_told_lost_and_not_owner() {
    let server = blocking(RedisServer::start);
    let url = quick(&server);
    let (stale, other) = (connect(&url).await, connect(&url).await);
    let n = name("n");
    let (a, b) = (OwnerId::random(), OwnerId::random());
    let first = acquired(
        stale
            .try_acquire(Claim::new(&n, &a, ttl(200)))
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = acquired(
        other
            .try_acquire(Claim::new(&n, &b, ttl(60_000)))
            .await
            .unwrap(),
    );
    assert!(next > first);
    assert_eq!(
        stale.renew(&n, &a, ttl(60_000)).await.unwrap(),
        RenewOutcome::Lost
    );
    assert_eq!(
        stale.release(&n, &a).await.unwrap(),
        ReleaseOutcome::NotOwner
    );
    match stale
        .try_acquire(Claim::new(&n, &a, ttl(60_000)))
        .await
        .unwrap()
    {
        AcquireOutcome::Held(h) => assert_eq!((h.owner, h.token), (b, next)),
        other => panic!("expected held by b, got {other:?}"),
    }
}

/// Set in the holder process of the next test: `<url> <name>`.
const HOLDER_ENV: &str = "LOCK_REDIS_TEST_HOLDER";

/// A holder *process* stopped with SIGSTOP past its ttl: another client acquires meanwhile;
/// once resumed, the holder's guard fires, its renew says lost and its release not owner.
#[test]
fn a_holder_process_paused_past_its_ttl_is_told_lost_and_not_owner() {
    if let Ok(spec) = std::env::var(HOLDER_ENV) {
        return holder_process(&spec);
    }
    let server = RedisServer::start();
    let n = name("n");
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "a_holder_process_paused_past_its_ttl_is_told_lost_and_not_owner",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(HOLDER_ENV, format!("{} {n}", quick(&server)))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the holder process");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The harness may have printed the test's name on the same line.
            if let Some(at) = line.find("holder: ") {
                let _ = tx.send(line[at + "holder: ".len()..].to_owned());
            }
        }
    });
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(10))
            .expect("the holder says")
    };

    let said = next_line();
    let first: u64 = said
        .strip_prefix("acquired ")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("the holder said {said:?}"));
    kill(pid, Signal::SIGSTOP).expect("stop the holder");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let next = runtime.block_on(async {
        let other = connect(&server.url()).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        acquired(
            other
                .try_acquire(Claim::new(&n, &OwnerId::random(), ttl(60_000)))
                .await
                .unwrap(),
        )
    });
    assert!(next.get() > first, "{next} after {first}");
    kill(pid, Signal::SIGCONT).expect("resume the holder");

    let said: Vec<String> = (0..3).map(|_| next_line()).collect();
    assert!(said[0].starts_with("lost "), "{said:?}");
    assert_eq!(said[1..], ["renew Lost", "release NotOwner"]);
    assert!(child.wait().expect("the holder exits").success());
}

/// The holder process's part: acquire with a guard (ttl 500 ms), then report.
fn holder_process(spec: &str) {
    let (url, n) = spec.split_once(' ').expect("<url> <name>");
    let n = LockName::new(n).expect("a name");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let lock = Arc::new(connect(url).await);
        let options = AcquireOptions::new().ttl(ttl(500)).wait(Wait::No);
        let guard = Guard::acquire(lock.clone(), n.clone(), options)
            .await
            .expect("acquire")
            .acquired()
            .expect("the name is free");
        println!("holder: acquired {}", guard.token());
        let reason = guard.lost().await;
        println!("holder: lost {reason}");
        let owner = guard.lease().owner.clone();
        println!(
            "holder: renew {:?}",
            lock.renew(&n, &owner, ttl(500)).await.expect("renew")
        );
        println!(
            "holder: release {:?}",
            guard.release().await.expect("release")
        );
    });
}

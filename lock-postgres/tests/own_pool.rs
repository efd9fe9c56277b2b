//! Locks on a pool the caller made: they work with handles on pools of their own, take their
//! LISTEN connection and their session locks' connections from that pool and give them back,
//! and a pool that would lose grants in a crash is refused.

use std::str::FromStr;
use std::time::Duration;

use conformance_tests::kit::PostgresServer;
use lock_core::{
    AcquireOutcome, Claim, Error, InvalidInput, Lock, LockName, OwnerId, ReleaseOutcome, Ttl,
};
use lock_postgres::{Config, LeaseLock, SessionLock};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

static SERVER: conformance_tests::kit::Shared<PostgresServer> =
    conformance_tests::kit::Shared::new(PostgresServer::start);

fn url() -> String {
    SERVER.with(PostgresServer::url)
}

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

/// How long a wake-up that should come may take before the test calls it missing.
const PROMPTLY: Duration = Duration::from_secs(5);

fn pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy_with(options)
}

fn my_pool() -> PgPool {
    pool(PgConnectOptions::from_str(&url()).unwrap())
}

fn config(params: &str) -> Config {
    Config::from_url(&format!("{}?{params}", url())).unwrap()
}

/// Connections of `pool` out of it (in use, not idle), once the count settles at `want` (a
/// connection dropped goes back to the pool a moment later, on a task of its own), or as it
/// is after a second.
async fn in_use(pool: &PgPool, want: usize) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let now = pool.size() as usize - pool.num_idle();
        if now == want || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn acquired(outcome: AcquireOutcome) -> u64 {
    match outcome {
        AcquireOutcome::Acquired(lease) => lease.token.get(),
        other => panic!("expected acquired, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_my_pool_are_the_same_leases() {
    let pool = my_pool();
    let mine = LeaseLock::with_pool(pool.clone(), config("table=own_pool_leases"))
        .await
        .unwrap();
    let theirs = LeaseLock::connect(&format!("{}?table=own_pool_leases", url()))
        .await
        .unwrap();
    let (name, a, b) = (
        LockName::new("own-pool-lease").unwrap(),
        OwnerId::random(),
        OwnerId::random(),
    );
    let token = acquired(
        mine.try_acquire(Claim::new(&name, &a, ttl()))
            .await
            .unwrap(),
    );
    match theirs
        .try_acquire(Claim::new(&name, &b, ttl()))
        .await
        .unwrap()
    {
        AcquireOutcome::Held(holder) => {
            assert_eq!((holder.owner, holder.token.get()), (a.clone(), token));
        }
        other => panic!("the other handle should see the lease held: {other:?}"),
    }
    assert_eq!(
        in_use(&pool, 0).await,
        0,
        "statements give their connection back"
    );

    // A waiter on my pool keeps one connection of it for LISTEN and hears a release made
    // through the other handle.
    let change = mine.watch(&name).await.unwrap().expect("LISTEN is on");
    assert_eq!(
        in_use(&pool, 1).await,
        1,
        "the LISTEN connection is kept out of the pool"
    );
    assert_eq!(
        theirs.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    tokio::time::timeout(PROMPTLY, change)
        .await
        .expect("the release's NOTIFY reaches the waiter on my pool");
    let next = acquired(
        theirs
            .try_acquire(Claim::new(&name, &b, ttl()))
            .await
            .unwrap(),
    );
    assert!(
        next > token,
        "tokens keep rising across handles: {next} > {token}"
    );
    assert_eq!(
        mine.release(&name, &b).await.unwrap(),
        ReleaseOutcome::Released,
        "a lease is released through any handle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_locks_on_my_pool_keep_a_connection_each_until_released() {
    let pool = my_pool();
    let mine = SessionLock::with_pool(pool.clone(), config("mode=session&table=own_pool_sessions"))
        .await
        .unwrap();
    let theirs = SessionLock::connect(&format!("{}?mode=session&table=own_pool_sessions", url()))
        .await
        .unwrap();
    let (a, b) = (OwnerId::random(), OwnerId::random());
    let names = [
        LockName::new("own-pool-session-1").unwrap(),
        LockName::new("own-pool-session-2").unwrap(),
    ];
    for (held, name) in names.iter().enumerate() {
        acquired(mine.try_acquire(Claim::new(name, &a, ttl())).await.unwrap());
        assert_eq!(
            in_use(&pool, held + 1).await,
            held + 1,
            "each held lock keeps its connection"
        );
        assert!(
            matches!(
                theirs.try_acquire(Claim::new(name, &b, ttl())).await.unwrap(),
                AcquireOutcome::Held(holder) if holder.owner == a
            ),
            "the other handle sees {name} held"
        );
    }
    for name in &names {
        assert_eq!(
            mine.release(name, &a).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    assert_eq!(
        in_use(&pool, 0).await,
        0,
        "a released lock's connection goes back"
    );
    for name in &names {
        acquired(
            theirs
                .try_acquire(Claim::new(name, &b, ttl()))
                .await
                .unwrap(),
        );
        theirs.release(name, &b).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_does_not_wait_for_commits_is_refused() {
    let options = PgConnectOptions::from_str(&url())
        .unwrap()
        .options([("synchronous_commit", "off")]);
    match LeaseLock::with_pool(pool(options), config("table=own_pool_leases")).await {
        Err(Error::InvalidInput(InvalidInput::Config(message))) => {
            assert!(message.contains("synchronous_commit=off"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_type_refuses_the_other_mode() {
    let session = format!("{}?mode=session", url());
    match LeaseLock::connect(&session).await {
        Err(Error::InvalidInput(InvalidInput::Config(message))) => {
            assert!(message.contains("mode=session"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match SessionLock::with_pool(my_pool(), config("mode=lease")).await {
        Err(Error::InvalidInput(InvalidInput::Config(message))) => {
            assert!(message.contains("mode=lease"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let lock = lock_postgres::connect(&session).await.unwrap();
    assert!(
        !lock.capabilities().expiry,
        "connect picks the session lock"
    );
}

//! Wake-ups: all waiters of a handle share one pub/sub connection, `watch` returns only once
//! the server has confirmed the subscription, channels nobody waits on are let go, and
//! without pub/sub waiters still get the lock by polling.

use std::time::Duration;

use conformance_tests::kit::RedisServer;
use lock_core::{Acquisition, Claim, Lock, LockName, OwnerId, ReleaseOutcome, Ttl, Wait};
use lock_redis::RedisLock;

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).expect("a ttl")
}

fn names(n: usize) -> Vec<LockName> {
    (0..n)
        .map(|i| LockName::new(format!("n{i}")).unwrap())
        .collect()
}

async fn connect(url: &str) -> RedisLock {
    RedisLock::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a client")
        .get_multiplexed_async_connection()
        .await
        .expect("a raw connection")
}

async fn query<T: redis::FromRedisValue>(url: &str, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(&mut raw(url).await)
        .await
        .expect("a raw query")
}

fn start(args: &'static [&'static str]) -> RedisServer {
    tokio::task::block_in_place(|| RedisServer::start_with_args(args))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_a_handle_share_one_pubsub_connection() {
    let server = start(&[]);
    let url = server.url();
    let (waiting, holding) = (connect(&url).await, connect(&url).await);
    let names = names(20);
    let holder = OwnerId::random();
    for name in &names {
        assert!(matches!(
            holding
                .try_acquire(Claim::new(name, &holder, ttl()))
                .await
                .unwrap(),
            lock_core::AcquireOutcome::Acquired(_)
        ));
    }
    let waiters: Vec<_> = names
        .iter()
        .map(|name| {
            let (waiting, name) = (waiting.clone(), name.clone());
            tokio::spawn(async move {
                lock_core::acquire(
                    &waiting,
                    Claim::new(&name, &OwnerId::random(), ttl()),
                    Wait::Forever,
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let clients: String = query(
        &url,
        redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub"),
    )
    .await;
    assert_eq!(
        clients.lines().count(),
        1,
        "one pub/sub connection for 20 waiters:\n{clients}"
    );
    for name in &names {
        assert_eq!(
            holding.release(name, &holder).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    for waiter in waiters {
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release")
            .unwrap()
            .unwrap();
        assert!(matches!(got, Acquisition::Acquired(_)), "{got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_returns_once_subscribed_and_channels_nobody_waits_on_are_let_go() {
    let server = start(&[]);
    let url = server.url();
    let lock = connect(&url).await;
    let names = names(300);
    for name in &names {
        let change = lock.watch(name).await.unwrap().expect("pub/sub works");
        let channel = lock.keys(name).channel;
        let (_, subscribers): (String, u64) =
            query(&url, redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel)).await;
        assert_eq!(subscribers, 1, "{channel} is subscribed when watch returns");
        drop(change);
    }
    let channels: Vec<String> =
        query(&url, redis::cmd("PUBSUB").arg("CHANNELS").arg("lock:*")).await;
    assert!(
        channels.len() <= 64,
        "{} channels still subscribed",
        channels.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pubsub_waiters_poll() {
    // A user who may use keys and scripts but no channel at all.
    let server = start(&[
        "--user",
        "default",
        "off",
        "--user",
        "app",
        "on",
        ">pw",
        "~*",
        "resetchannels",
        "+@all",
    ]);
    let url = format!("redis://app:pw@127.0.0.1:{}", server.port());
    let (waiting, holding) = (connect(&url).await, connect(&url).await);
    let name = LockName::new("n").unwrap();
    assert!(
        waiting.watch(&name).await.unwrap().is_none(),
        "SUBSCRIBE is refused"
    );
    let holder = OwnerId::random();
    holding
        .try_acquire(Claim::new(&name, &holder, ttl()))
        .await
        .unwrap();
    let waiter = {
        let (waiting, name) = (waiting.clone(), name.clone());
        tokio::spawn(async move {
            lock_core::acquire(
                &waiting,
                Claim::new(&name, &OwnerId::random(), ttl()),
                Wait::Forever,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    assert_eq!(
        holding.release(&name, &holder).await.unwrap(),
        ReleaseOutcome::Released
    );
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("found the lock open by polling")
        .unwrap()
        .unwrap();
    assert!(matches!(got, Acquisition::Acquired(_)), "{got:?}");
    let clients: String = query(&url, redis::cmd("CLIENT").arg("LIST")).await;
    assert!(
        clients.lines().count() <= 4,
        "no connection per poll:\n{clients}"
    );
}

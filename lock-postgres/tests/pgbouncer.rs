//! Lease mode through PgBouncer in transaction pooling mode (`pgbouncer=true`): the whole
//! conformance suite, the cross-process check included, with waiters polling since LISTEN
//! cannot work there.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use conformance_tests::Setup;
use conformance_tests::kit::{PgBouncer, PostgresServer};
use lock_core::{Lock, LockName, OwnerId, Ttl};
use lock_postgres::LeaseLock;

/// The server and its bouncer, once per test process (the bouncer goes first at exit).
static SERVERS: conformance_tests::kit::Shared<(PgBouncer, PostgresServer)> =
    conformance_tests::kit::Shared::new(|| {
        let postgres = PostgresServer::start();
        (PgBouncer::start(&postgres), postgres)
    });

fn bouncer_url() -> String {
    let url = SERVERS.with(|(bouncer, _)| bouncer.url());
    format!("{url}?pgbouncer=true&connect_timeout=5")
}

struct ThroughPgBouncer;

impl Setup for ThroughPgBouncer {
    fn location(&self) -> String {
        bouncer_url()
    }

    fn connect(&self, url: &str) -> Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send + '_>> {
        let url = url.to_owned();
        Box::pin(async move {
            let lock = LeaseLock::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            Arc::new(lock) as Arc<dyn Lock>
        })
    }
}

conformance_tests::suite!(ThroughPgBouncer);

/// Without LISTEN, a handle says it has no wake-ups, and waiters poll.
#[tokio::test]
async fn no_listen_through_pgbouncer() {
    let lock = LeaseLock::connect(&bouncer_url()).await.unwrap();
    assert!(!lock.capabilities().wake_on_release);
    let name = LockName::new("watch").unwrap();
    assert!(lock.watch(&name).await.unwrap().is_none());
    // Many statements in a row, on server connections PgBouncer hands around: no prepared
    // statement is ever missing.
    let owner = OwnerId::random();
    let ttl = Ttl::from_millis(60_000).unwrap();
    for _ in 0..50 {
        lock.try_acquire(&name, &owner, ttl).await.unwrap();
        lock.renew(&name, &owner, ttl).await.unwrap();
        lock.inspect(&name).await.unwrap();
        lock.release(&name, &owner).await.unwrap();
    }
}

//! Through PgBouncer in transaction pooling mode (`pgbouncer=true`): no LISTEN, and no
//! prepared statement missing on the server connections PgBouncer hands around.

mod bouncer;

use lock_core::{Claim, Lock, LockName, OwnerId, Ttl};
use lock_postgres::LeaseLock;

/// Without LISTEN, a handle says it has no wake-ups, and waiters poll.
#[tokio::test]
async fn no_listen_through_pgbouncer() {
    let lock = LeaseLock::connect(&bouncer::url()).await.unwrap();
    assert!(!lock.capabilities().wake_on_release);
    let name = LockName::new("watch").unwrap();
    assert!(lock.watch(&name).await.unwrap().is_none());
    // Many statements in a row, on server connections PgBouncer hands around: no prepared
    // statement is ever missing.
    let owner = OwnerId::random();
    let ttl = Ttl::from_millis(60_000).unwrap();
    for _ in 0..50 {
        lock.try_acquire(Claim::new(&name, &owner, ttl))
            .await
            .unwrap();
        lock.renew(&name, &owner, ttl).await.unwrap();
        lock.inspect(&name).await.unwrap();
        lock.release(&name, &owner).await.unwrap();
    }
}

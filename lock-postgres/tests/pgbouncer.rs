//! Lease mode through PgBouncer in transaction pooling mode (`pgbouncer=true`): the whole
//! conformance suite, the cross-process check included, with waiters polling since LISTEN
//! cannot work there (`pgbouncer_statements.rs` checks that).

mod bouncer;

use std::sync::Arc;

use conformance_tests::{Setup, async_trait};
use lock_core::Lock;
use lock_postgres::LeaseLock;

struct ThroughPgBouncer;

#[async_trait]
impl Setup for ThroughPgBouncer {
    fn location(&self) -> String {
        bouncer::url()
    }

    async fn connect(&self, url: &str) -> Arc<dyn Lock> {
        let lock = LeaseLock::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        Arc::new(lock)
    }
}

conformance_tests::suite!(ThroughPgBouncer);

//! The Redis backend passes the whole conformance suite, cross-process check included,
//! against a `redis-server` of its own.

use std::sync::Arc;

use conformance_tests::kit::{RedisServer, Shared};
use conformance_tests::{Setup, async_trait};
use lock_core::Lock;
use lock_redis::RedisLock;

/// One server per test process; workers of the cross-process case are handed its URL.
static SERVER: Shared<RedisServer> = Shared::new(RedisServer::start);

struct Redis;

#[async_trait]
impl Setup for Redis {
    fn location(&self) -> String {
        SERVER.with(RedisServer::url)
    }

    async fn connect(&self, url: &str) -> Arc<dyn Lock> {
        let lock = RedisLock::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        Arc::new(lock)
    }
}

conformance_tests::suite!(Redis);

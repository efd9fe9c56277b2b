//! The Redis backend passes the whole conformance suite, cross-process check included,
//! against a `redis-server` of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use conformance_tests::Setup;
use conformance_tests::kit::{RedisServer, Shared};
use lock_core::Lock;
use lock_redis::RedisLock;

/// One server per test process; workers of the cross-process case are handed its URL.
static SERVER: Shared<RedisServer> = Shared::new(RedisServer::start);

struct Redis;

impl Setup for Redis {
    fn location(&self) -> String {
        SERVER.with(RedisServer::url)
    }

    fn connect(&self, url: &str) -> Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send + '_>> {
        let url = url.to_owned();
        Box::pin(async move {
            let lock = RedisLock::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            Arc::new(lock) as Arc<dyn Lock>
        })
    }
}

conformance_tests::suite!(Redis);

//! The Postgres backend against the conformance suite, on a Postgres of its own: every case
//! in lease mode (`lease::…`), cross-process check included, and in session mode
//! (`session::…`) every case but those its capabilities rule out (expiry, permits, the line,
//! holder ties), shown as ignored; its shared cases and cross-process readers-writers run.

use std::sync::Arc;

use conformance_tests::kit::{PostgresServer, Shared};
use conformance_tests::{Setup, async_trait};
use lock_core::Lock;

/// One server per test process; the cross-process workers are handed its URL.
static SERVER: Shared<PostgresServer> = Shared::new(PostgresServer::start);

/// The suite's handles, at `suffix` added to the server's URL.
struct Postgres {
    suffix: &'static str,
}

#[async_trait]
impl Setup for Postgres {
    fn location(&self) -> String {
        format!("{}{}", SERVER.with(PostgresServer::url), self.suffix)
    }

    async fn connect(&self, url: &str) -> Arc<dyn Lock> {
        lock_postgres::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
    }
}

conformance_tests::suite!(
    "lease::" => Postgres { suffix: "" },
    "session::" => Postgres { suffix: "?mode=session" },
);

//! The Postgres backend against the conformance suite, on a Postgres of its own: the whole
//! suite with the cross-process check in lease mode, and what applies in session mode.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use conformance_tests::Setup;
use conformance_tests::kit::PostgresServer;
use lock_core::Lock;

/// One server per test process; the cross-process workers are handed its URL.
static SERVER: conformance_tests::kit::Shared<PostgresServer> =
    conformance_tests::kit::Shared::new(PostgresServer::start);

fn server_url() -> String {
    SERVER.with(PostgresServer::url)
}

/// The suite's handles, at `suffix` added to the server's URL.
struct Postgres {
    suffix: &'static str,
}

impl Setup for Postgres {
    fn location(&self) -> String {
        format!("{}{}", server_url(), self.suffix)
    }

    fn connect(&self, url: &str) -> Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send + '_>> {
        let url = url.to_owned();
        Box::pin(async move {
            lock_postgres::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
        })
    }
}

/// Lease mode, the default: every case, the cross-process check included.
mod lease {
    use super::Postgres;

    conformance_tests::suite!(Postgres { suffix: "" });
}

/// Session advisory locks: the cases that need expiry skip themselves by capability.
mod session {
    use super::Postgres;

    conformance_tests::suite!(Postgres {
        suffix: "?mode=session"
    });
}

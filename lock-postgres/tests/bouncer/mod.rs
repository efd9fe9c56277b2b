//! A Postgres server behind a PgBouncer in transaction pooling mode, once per test process.

use conformance_tests::kit::{PgBouncer, PostgresServer, Shared};

/// The server and its bouncer (the bouncer goes first at exit).
static SERVERS: Shared<(PgBouncer, PostgresServer)> = Shared::new(|| {
    let postgres = PostgresServer::start();
    (PgBouncer::start(&postgres), postgres)
});

/// The lock URL through the bouncer, with `pgbouncer=true`.
pub fn url() -> String {
    let url = SERVERS.with(|(bouncer, _)| bouncer.url());
    format!("{url}?pgbouncer=true&connect_timeout=5")
}

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod config;
mod db;
mod errors;
mod held;
mod key;
mod lease;
mod listen;
mod schema;
mod session;
mod shared;
mod socket;
mod sql;

use std::sync::Arc;

use lock_core::{Error, Lock};
use sqlx::postgres::PgPool;

pub use config::{Config, Mode};
pub use key::advisory_key;
pub use lease::LeaseLock;
pub use session::SessionLock;

use sql::Statements;

/// The lease mode's try-acquire and release statements for `table` and its waiters' `line`
/// table (both quoted `schema.table`), exactly as this crate sends them, and the line table's
/// definition (a release looks up the waiters it serves to NOTIFY) followed by the columns of
/// shared leases and permits added to `table` (which the statements read). Acquire binds `$1` name, `$2`
/// owner, `$3` ttl in ms; release binds `$1` name, `$2` owner, `$3` the NOTIFY channel. For
/// `lock-bench`, which times the bare SQL beside the library; not a stable interface.
#[doc(hidden)]
pub fn lease_statements(table: &str, line: &str) -> (String, String, String) {
    let s = Statements::new(table, line);
    (
        format!(
            "{}; {}",
            sql::create_line_table(line),
            sql::add_table_columns(table)
        ),
        s.acquire.text().to_owned(),
        s.release.text().to_owned(),
    )
}

/// Connects to the Postgres at `url` (see [`Config::from_url`]) with the lock its `mode=`
/// names: a [`LeaseLock`] (the default) or a [`SessionLock`].
///
/// # Errors
/// As [`LeaseLock::connect`].
pub async fn connect(url: &str) -> Result<Arc<dyn Lock>, Error> {
    connect_with(Config::from_url(url)?).await
}

/// [`connect`] with a checked [`Config`].
///
/// # Errors
/// As [`LeaseLock::connect`].
pub async fn connect_with(config: Config) -> Result<Arc<dyn Lock>, Error> {
    Ok(match config.mode() {
        Mode::Lease => Arc::new(LeaseLock::connect_with(config).await?),
        Mode::Session => Arc::new(SessionLock::connect_with(config).await?),
    })
}

/// The lock `config`'s mode names, on the caller's `pool` (see [`LeaseLock::with_pool`] and
/// [`SessionLock::with_pool`]).
///
/// # Errors
/// As [`LeaseLock::with_pool`].
pub async fn connect_with_pool(pool: PgPool, config: Config) -> Result<Arc<dyn Lock>, Error> {
    Ok(match config.mode() {
        Mode::Lease => Arc::new(LeaseLock::with_pool(pool, config).await?),
        Mode::Session => Arc::new(SessionLock::with_pool(pool, config).await?),
    })
}

//! The handle's connection pool: every statement bounded in time, a dead connection replaced
//! and the statement sent again once, the table re-created if someone dropped it, and each
//! statement wrapped in a transaction when a transaction-pooling PgBouncer is in between.

use std::time::Duration;

use lock_core::Error;
use lock_core::Operation;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::{Connection, Row};
use tokio::time::timeout;

use crate::config::Config;
use crate::errors::{self, UNDEFINED_TABLE, connection_lost};
use crate::schema::{self, EnsureError};
use crate::sql::PgQuery;

/// A little more than the pool's own acquire timeout, so that the pool's clearer error wins.
const SLACK: Duration = Duration::from_millis(500);

/// A pool of connections for one handle and what it needs to use them.
#[derive(Debug)]
pub(crate) struct Db {
    pub(crate) config: Config,
    pub(crate) pool: PgPool,
}

impl Db {
    /// A pool of up to `max` connections, opened as needed.
    pub(crate) fn new(config: &Config, max: u32) -> Self {
        Self {
            config: config.clone(),
            pool: pool_options(config, max).connect_lazy_with(config.connect_options()),
        }
    }

    /// A connection of the pool, within the connect timeout.
    pub(crate) async fn acquire(
        &self,
        doing: Operation,
    ) -> Result<PoolConnection<Postgres>, Error> {
        acquire(&self.pool, &self.config, doing).await
    }

    /// Statements on the caller's `pool`.
    pub(crate) fn with_pool(config: &Config, pool: PgPool) -> Self {
        Self {
            config: config.clone(),
            pool,
        }
    }

    /// Runs one statement and returns its rows (in a transaction of its own through PgBouncer).
    ///
    /// A connection found dead (killed, or the server restarted) is dropped and the statement
    /// sent again on another: the server did not complete it on the dead one (bar a crash in
    /// the instant between commit and reply). A missing table is created again, once.
    pub(crate) async fn fetch(
        &self,
        doing: Operation,
        make: impl Fn() -> PgQuery + Sync,
    ) -> Result<Vec<PgRow>, Error> {
        self.fetch_steps(doing, &[&make]).await
    }

    /// Runs statements in order in one transaction (one statement needs none, unless through
    /// PgBouncer), retrying as [`fetch`](Self::fetch) does; returns the last one's rows.
    pub(crate) async fn fetch_steps(
        &self,
        doing: Operation,
        steps: &[&(dyn Fn() -> PgQuery + Sync)],
    ) -> Result<Vec<PgRow>, Error> {
        let limit = self.config.connect_timeout();
        // After a restart every idle connection of the pool is dead: each is found so in an
        // instant and dropped, and the next try goes on.
        let mut reconnects = self.pool.size() + 1;
        let mut recreated = false;
        loop {
            let mut conn = self.acquire(doing).await?;
            let result = timeout(limit, run(&mut conn, steps, self.config.pgbouncer())).await;
            let e = match result {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(e)) => e,
                Err(_) => {
                    conn.close_on_drop();
                    return Err(errors::statement_timed_out(&self.config, doing, limit));
                }
            };
            if connection_lost(&e) {
                conn.close_on_drop();
                if reconnects > 0 {
                    tracing::debug!(error = %e, "{doing}: connection lost; retrying on another");
                    reconnects -= 1;
                    continue;
                }
            } else if errors::sqlstate(&e).as_deref() == Some(UNDEFINED_TABLE) && !recreated {
                recreated = true;
                tracing::warn!(
                    table = %self.config.qualified_table(),
                    "{doing}: the lock table is gone; creating it again"
                );
                match timeout(limit, schema::ensure(&mut conn, &self.config)).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => return Err(ensure_error(&self.config, e)),
                    Err(_) => {
                        conn.close_on_drop();
                        return Err(errors::statement_timed_out(&self.config, doing, limit));
                    }
                }
            }
            return Err(errors::map(&self.config, doing, e));
        }
    }
}

/// The pool settings every pool of a handle shares.
pub(crate) fn pool_options(config: &Config, max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(config.connect_timeout())
        // No ping before each use: it would double every operation's round trips. A
        // connection found dead is replaced and the statement retried once instead.
        .test_before_acquire(false)
}

/// A connection of `pool`, within the connect timeout.
pub(crate) async fn acquire(
    pool: &PgPool,
    config: &Config,
    doing: Operation,
) -> Result<PoolConnection<Postgres>, Error> {
    let limit = config.connect_timeout() + SLACK;
    match timeout(limit, pool.acquire()).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(errors::map(config, doing, e)),
        Err(_) => Err(errors::timed_out(config, doing, limit)),
    }
}

async fn run(
    conn: &mut PgConnection,
    steps: &[&(dyn Fn() -> PgQuery + Sync)],
    pgbouncer: bool,
) -> Result<Vec<PgRow>, sqlx::Error> {
    if steps.len() == 1 && !pgbouncer {
        return steps[0]().fetch_all(conn).await;
    }
    let mut tx = conn.begin().await?;
    let mut rows = Vec::new();
    for step in steps {
        // Through PgBouncer a named statement may be gone (or another) on the next server
        // connection; the unnamed one lives as long as the transaction.
        rows = step().persistent(!pgbouncer).fetch_all(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// What a failed table check says.
pub(crate) fn ensure_error(config: &Config, e: EnsureError) -> Error {
    match e {
        EnsureError::Sql(e) => errors::map(config, Operation::Connect, e),
        EnsureError::Foreign(message) => errors::refused(Operation::Connect, message),
    }
}

/// Column `column` of `row`, or a backend error naming it.
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, Error>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column).map_err(|e| {
        let message = format!("unexpected answer from Postgres in column {column}");
        // The trait method sets its own operation (`during`).
        Error::backend(errors::BACKEND, Operation::Inspect, message, Some(e.into()))
    })
}

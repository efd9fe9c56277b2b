//! Creating the table, its waiters' line table and their schema on first use, safely when many
//! processes do it at once.

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::config::{Config, quote_ident};
use crate::key;
use crate::sql;

/// The columns a lock table must have, with their types as `format_type` names them.
const COLUMNS: [(&str, &str); 4] = [
    ("name", "text"),
    ("owner", "text"),
    ("token", "bigint"),
    ("expires_at", "timestamp with time zone"),
];

/// The columns of shared leases and permits in the lock table: added to tables made before them.
const TABLE_ADDED: [&str; 2] = ["capacity", "holders"];

/// The columns of the kind a place asks for in the line table: added to tables made before them.
const LINE_ADDED: [&str; 2] = ["capacity", "weight"];

/// SQLSTATEs of losing a race to create the same object: unique_violation (on the catalogs),
/// duplicate_table, duplicate_schema, duplicate_object.
const CREATION_RACE: [&str; 4] = ["23505", "42P07", "42P06", "42710"];

/// Why the table cannot be used.
pub(crate) enum EnsureError {
    /// The server said no, or the connection failed.
    Sql(sqlx::Error),
    /// A table of that name exists but is not a lock table.
    Foreign(String),
}

impl From<sqlx::Error> for EnsureError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sql(e)
    }
}

/// Makes sure the table exists and has the lock table's columns, creating it, its line table
/// (`<table>_line`) and its schema when missing.
///
/// One transaction: a transaction-level advisory lock on a key derived from the table's name
/// serializes creators, so two processes doing this at the same moment both succeed (the second
/// finds the table). A creation race with someone not taking that lock (a unique violation on
/// the catalogs) is retried once. Nothing is created when the table exists, so a role without
/// CREATE privilege can use tables made for it. Works through a transaction-pooling PgBouncer.
pub(crate) async fn ensure(conn: &mut PgConnection, config: &Config) -> Result<(), EnsureError> {
    match ensure_once(conn, config).await {
        Err(EnsureError::Sql(e))
            if crate::errors::sqlstate(&e).is_some_and(|c| CREATION_RACE.contains(&c.as_str())) =>
        {
            ensure_once(conn, config).await
        }
        other => other,
    }
}

async fn ensure_once(conn: &mut PgConnection, config: &Config) -> Result<(), EnsureError> {
    let (schema, table) = (config.schema(), config.table());
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
        .bind(key::creation_key(schema, table))
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?;
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS has_schema, \
                EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = $1 AND c.relname = $2) AS has_table, \
                EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = $1 AND c.relname = $3) AS has_line",
    )
    .bind(schema)
    .bind(table)
    .bind(config.line_table())
    .persistent(false)
    .fetch_one(&mut *tx)
    .await?;
    let (has_schema, has_table, has_line): (bool, bool, bool) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if !has_schema {
        let ddl = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await?;
    }
    if !has_table {
        let ddl = sql::create_table(&config.quoted_table());
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await?;
    }
    if !has_line {
        let ddl = sql::create_line_table(&config.quoted_line_table());
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await?;
    }
    let found = columns_of(&mut tx, schema, table).await?;
    let missing: Vec<String> = COLUMNS
        .iter()
        .filter(|(n, t)| !found.iter().any(|(fn_, ft)| fn_ == n && ft == t))
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    if !missing.is_empty() {
        return Err(EnsureError::Foreign(format!(
            "table {} exists but is not a lock table: it lacks the column(s) {}",
            config.qualified_table(),
            missing.join(", ")
        )));
    }
    // Tables made by an earlier version: the columns of shared leases and permits, added
    // (nullable, or with the default of an exclusive claim), so that nothing else changes.
    if !TABLE_ADDED
        .iter()
        .all(|c| found.iter().any(|(n, _)| n == c))
    {
        let ddl = sql::add_table_columns(&config.quoted_table());
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await?;
    }
    let line = columns_of(&mut tx, schema, &config.line_table()).await?;
    if !LINE_ADDED.iter().all(|c| line.iter().any(|(n, _)| n == c)) {
        let ddl = sql::add_line_columns(&config.quoted_line_table());
        sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The columns of `schema.table`, with their types as `format_type` names them.
async fn columns_of(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, EnsureError> {
    let rows = sqlx::query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(schema)
    .bind(table)
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()?)
}

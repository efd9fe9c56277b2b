//! The statements, written once per table. Lock names, owners and keys are always bind
//! parameters (`$1`…); only the checked, quoted table name is part of the text.
//!
//! Every lease statement reads the time once, `clock_timestamp()` in a materialized CTE, so a
//! statement decides on one instant of the server's clock.

use std::sync::Arc;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;

/// A statement ready to bind.
pub(crate) type PgQuery = Query<'static, Postgres, PgArguments>;

/// A statement's text, shared by every call.
#[derive(Clone, Debug)]
pub(crate) struct Sql(Arc<str>);

impl Sql {
    fn new(text: String) -> Self {
        Self(text.into())
    }

    /// The statement's text.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }

    /// The statement, to bind its parameters to.
    pub(crate) fn query(&self) -> PgQuery {
        sqlx::query(AssertSqlSafe(self.0.clone()))
    }
}

/// A new row's first token: the server clock in microseconds, above every token an earlier
/// row of that name can have handed out, should an operator have deleted it.
const FIRST_TOKEN: &str = "greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 1)";

/// The end of a lease grant `INSERT INTO <table> AS l …` whose row may exist: taken over when
/// open, expired or the caller's (the same token for the caller's live lease, the next one
/// otherwise), left alone when another owner's lease is live; the token when granted.
const GRANT_ON_CONFLICT: &str = "ON CONFLICT (name) DO UPDATE SET \
       owner = excluded.owner, \
       token = CASE WHEN l.owner = excluded.owner AND l.expires_at > (SELECT at FROM now) \
                    THEN l.token ELSE l.token + 1 END, \
       expires_at = excluded.expires_at \
     WHERE l.owner IS NULL OR l.expires_at IS NULL \
        OR l.expires_at <= (SELECT at FROM now) OR l.owner = excluded.owner \
     RETURNING l.token";

/// A select-list expression that lets the statement's transaction commit without waiting for
/// its WAL to reach disk (`SET LOCAL synchronous_commit = off`). Only for a statement whose
/// loss in a crash is safe: an owner's release. Lost, the lease is back as its holder left it,
/// token and expiry included, and runs out by itself; no one can have been granted the name
/// after it, since a grant commits durably and the WAL is one stream, so its flush would have
/// carried the release too.
const NO_FLUSH_WAIT: &str = "set_config('synchronous_commit', 'off', true)";

/// Microseconds from the CTE's `now.at` until `expires_at`.
const MICROS_LEFT: &str = "(extract(epoch FROM expires_at - now.at) * 1000000)::bigint";

/// The rows of `pg_locks` for the session advisory lock whose `bigint` key is parameter `key`.
fn advisory_lock_rows(key: &str) -> String {
    format!(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND classid = (({key} >> 32) & 4294967295)::oid AND objid = ({key} & 4294967295)::oid \
           AND objsubid = 1 AND granted"
    )
}

/// The row of `pg_locks` if this very session holds the advisory lock of key `key`.
fn own_lock(key: &str) -> String {
    format!(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
           AND classid = (({key} >> 32) & 4294967295)::oid AND objid = ({key} & 4294967295)::oid \
           AND objsubid = 1 AND granted"
    )
}

/// What a NOTIFY for name parameter `name` adds to its payload (an expression, in a statement
/// with the `now` CTE): a newline and the owner standing first in the name's line, leaving
/// out owner parameter `leaving`; nothing when no one stands in line. The listener then wakes
/// only that owner's turn ([`ChangeHub::notify_turn`](lock_core::raw::ChangeHub::notify_turn)).
/// Names and owners have no control characters, so the payload splits at its one newline.
fn first_in_line(line: &str, name: &str, leaving: Option<&str>) -> String {
    let others = leaving.map_or(String::new(), |owner| format!("AND q.owner <> {owner} "));
    format!(
        "coalesce(E'\\n' || (SELECT q.owner FROM {line} AS q, now \
           WHERE q.name = {name} {others}AND q.kept_until > now.at \
           ORDER BY q.joined, q.owner LIMIT 1), '')"
    )
}

/// The table's definition; the same for both modes.
pub(crate) fn create_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ( \
           name text COLLATE \"C\" PRIMARY KEY, \
           owner text, \
           token bigint NOT NULL CHECK (token > 0), \
           expires_at timestamptz \
         ); \
         COMMENT ON TABLE {table} IS 'lock-postgres: one row per lock name, never deleted, so \
           that fencing tokens keep rising; owner and expires_at are NULL while it is open'"
    )
}

/// The waiters' line table's definition: one row per waiter in line. `UNLOGGED`: a place
/// is worth nothing after a crash (its waiter asks again), and a statement that changes only
/// this table commits without waiting for a flush of the WAL.
pub(crate) fn create_line_table(line: &str) -> String {
    format!(
        "CREATE UNLOGGED TABLE IF NOT EXISTS {line} ( \
           name text COLLATE \"C\" NOT NULL, \
           owner text COLLATE \"C\" NOT NULL, \
           joined timestamptz NOT NULL, \
           kept_until timestamptz NOT NULL, \
           PRIMARY KEY (name, owner) \
         ); \
         COMMENT ON TABLE {line} IS 'lock-postgres: the waiters in line per lock name, first \
           joined first served; a place whose kept_until passed is gone'"
    )
}

/// Every statement of one table.
#[derive(Debug)]
pub(crate) struct Statements {
    /// Lease try acquire: `$1` name, `$2` owner, `$3` ttl in ms. One row: `won` (the token
    /// when acquired), and the row as it was before (`owner`, `token`, `left_us` while live).
    ///
    /// When the statement's snapshot already shows another owner's live lease, it does not
    /// try the insert at all: `ON CONFLICT DO UPDATE` locks the row even when its `WHERE`
    /// refuses the update, and that lock gives the transaction an xid and a WAL record, so
    /// every refused try would wait for a durable commit (an fsync). Waiters woken by a
    /// release all try at once; only the ones that may win now pay for a commit.
    pub(crate) acquire: Sql,
    /// Lease try acquire in line: `$1` name, `$2` owner, `$3` ttl in ms, `$4` patience in
    /// ms, `$5` channel or NULL. One row: as [`acquire`](Self::acquire), `behind` (a live
    /// place of another waiter stands ahead of the caller's), `first_left_ms` (how long the
    /// first of them is kept) and `passed` (0 or 1).
    ///
    /// The caller's place counts from when it joined, unless it lapsed (then it joins at the
    /// back). The lock row is tried only when no live place stands ahead (or the caller holds
    /// the lease already), so a waiter behind writes only the line, which is unlogged: no
    /// flush; and a place kept for over half the patience already is not rewritten, so a
    /// waiter that asks often mostly only reads. Lapsed places of others are deleted on the
    /// way.
    ///
    /// With a channel (the caller was named first by a NOTIFY since its last try), a caller
    /// that stood in line and finds the name open with another's place ahead NOTIFYs that
    /// one's turn (`passed`): a place's `joined` is its statement's start, but it shows only
    /// once that statement commits, so a place that joined earlier can show after a release
    /// named the waiter it then stands ahead of, and no one else would wake it (until it
    /// looked again, within 200 ms).
    pub(crate) in_line: Sql,
    /// Leave the line: `$1` name, `$2` owner, `$3` channel. One row: `gone` (0 or 1), `woke`
    /// (0 or 1). When a place went and the name is open, NOTIFY naming the one now first
    /// ([`first_in_line`]), so that it looks again.
    pub(crate) leave_line: Sql,
    /// Lease renew: `$1` name, `$2` owner, `$3` ttl in ms. A row with `token` when renewed.
    pub(crate) renew: Sql,
    /// Lease release: `$1` name, `$2` owner, `$3` channel. One row: `released` (0 or 1), the
    /// row as it was before (`owner`, `live`). NOTIFY naming the first in line when released.
    /// Commits without waiting for the disk ([`NO_FLUSH_WAIT`]); every other lease statement
    /// that writes the lock table waits.
    pub(crate) release: Sql,
    /// Lease force release: `$1` name, `$2` channel. One row: `released` (0 or 1). NOTIFY
    /// naming the first in line when released.
    pub(crate) force_release: Sql,
    /// Lease inspect: `$1` name. A row with `owner`, `token`, `left_us` while live.
    pub(crate) inspect: Sql,
    /// Session try acquire on the connection that is to hold it: `$1` name, `$2` owner, `$3`
    /// key, `$4`/`$5` the key's halves (the per-name step lock). One row: `ok`, `token`.
    pub(crate) session_acquire: Sql,
    /// The per-name step lock, shared, for the rest of the transaction: `$1`/`$2` halves.
    pub(crate) session_step_shared: Sql,
    /// The per-name step lock, exclusive: `$1`/`$2` halves.
    pub(crate) session_step: Sql,
    /// Who holds a session lock: `$1` name, `$2` key. A row with `pid`, `owner`, `token` while
    /// a session holds the key.
    pub(crate) session_holder: Sql,
    /// Whether this connection holds key `$1`: one row, `held`.
    pub(crate) session_check: Sql,
    /// Unlock key `$1` on this connection and NOTIFY channel `$2` with name `$3`: one row, `ok`.
    pub(crate) session_release: Sql,
    /// Terminate the session holding key `$1`: a row with `pid`, `terminated` per holder.
    pub(crate) session_terminate: Sql,
    /// Whether any session holds key `$1`: one row, `held`.
    pub(crate) session_held: Sql,
    /// NOTIFY channel `$1` with name `$2`.
    pub(crate) notify: Sql,
}

impl Statements {
    /// The statements for `table` and its `line` table, both already quoted.
    pub(crate) fn new(table: &str, line: &str) -> Self {
        Self {
            in_line: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at), \
                 mine AS MATERIALIZED ( \
                   SELECT q.joined, q.kept_until FROM {line} AS q, now \
                   WHERE q.name = $1 AND q.owner = $2 AND q.kept_until > now.at), \
                 head AS MATERIALIZED ( \
                   SELECT q.owner, q.kept_until FROM {line} AS q, now \
                   WHERE q.name = $1 AND q.owner <> $2 AND q.kept_until > now.at \
                     AND (NOT EXISTS (SELECT 1 FROM mine) \
                          OR (q.joined, q.owner) < ((SELECT joined FROM mine), $2::text)) \
                   ORDER BY q.joined, q.owner LIMIT 1), \
                 ahead AS MATERIALIZED ( \
                   SELECT EXISTS (SELECT 1 FROM head) AS any, \
                     (SELECT ceil(extract(epoch FROM head.kept_until - now.at) * 1000)::bigint \
                      FROM head, now) AS first_left_ms), \
                 prev AS (SELECT owner, token, expires_at FROM {table} WHERE name = $1), \
                 won AS ( \
                   INSERT INTO {table} AS l (name, owner, token, expires_at) \
                   SELECT $1, $2, {FIRST_TOKEN}, now.at + $3 * interval '1 millisecond' FROM now, ahead \
                   WHERE NOT EXISTS (SELECT 1 FROM prev WHERE prev.owner <> $2 AND prev.expires_at > now.at) \
                     AND (NOT ahead.any \
                          OR EXISTS (SELECT 1 FROM prev WHERE prev.owner = $2 AND prev.expires_at > now.at)) \
                   {GRANT_ON_CONFLICT} \
                 ), \
                 place AS ( \
                   INSERT INTO {line} AS q (name, owner, joined, kept_until) \
                   SELECT $1, $2, now.at, now.at + $4 * interval '1 millisecond' FROM now \
                   WHERE NOT EXISTS (SELECT 1 FROM won) \
                     AND NOT EXISTS (SELECT 1 FROM mine \
                                     WHERE mine.kept_until > now.at + $4 * interval '0.5 millisecond') \
                   ON CONFLICT (name, owner) DO UPDATE SET \
                     joined = CASE WHEN q.kept_until > excluded.joined THEN q.joined ELSE excluded.joined END, \
                     kept_until = excluded.kept_until \
                   RETURNING 1 \
                 ), \
                 gone AS ( \
                   DELETE FROM {line} AS q USING now \
                   WHERE q.name = $1 AND ((q.owner = $2 AND EXISTS (SELECT 1 FROM won)) \
                                          OR (q.owner <> $2 AND q.kept_until <= now.at)) \
                   RETURNING 1 \
                 ), \
                 passed AS ( \
                   SELECT pg_notify($5, $1 || E'\\n' || head.owner) FROM head, now \
                   WHERE $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM mine) \
                     AND NOT EXISTS (SELECT 1 FROM prev WHERE prev.owner IS NOT NULL \
                                                        AND prev.expires_at > now.at) \
                 ) \
                 SELECT won.token AS won, prev.owner, prev.token, \
                   CASE WHEN prev.expires_at > now.at \
                        THEN (extract(epoch FROM prev.expires_at - now.at) * 1000000)::bigint END AS left_us, \
                   ahead.any AS behind, ahead.first_left_ms, (SELECT count(*) FROM passed) AS passed \
                 FROM now CROSS JOIN ahead LEFT JOIN won ON true LEFT JOIN prev ON true"
            )),
            leave_line: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at), \
                 gone AS (DELETE FROM {line} WHERE name = $1 AND owner = $2 RETURNING name), \
                 open AS ( \
                   SELECT 1 FROM now WHERE NOT EXISTS ( \
                     SELECT 1 FROM {table} AS l \
                     WHERE l.name = $1 AND l.owner IS NOT NULL AND l.expires_at > now.at)), \
                 notified AS ( \
                   SELECT pg_notify($3, gone.name || {}) FROM gone, open) \
                 SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM notified) AS woke",
                first_in_line(line, "$1", Some("$2"))
            )),
            acquire: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at), \
                 prev AS (SELECT owner, token, expires_at FROM {table} WHERE name = $1), \
                 won AS ( \
                   INSERT INTO {table} AS l (name, owner, token, expires_at) \
                   SELECT $1, $2, {FIRST_TOKEN}, now.at + $3 * interval '1 millisecond' FROM now \
                   WHERE NOT EXISTS (SELECT 1 FROM prev WHERE prev.owner <> $2 AND prev.expires_at > now.at) \
                   {GRANT_ON_CONFLICT} \
                 ) \
                 SELECT won.token AS won, prev.owner, prev.token, \
                   CASE WHEN prev.expires_at > now.at \
                        THEN (extract(epoch FROM prev.expires_at - now.at) * 1000000)::bigint END AS left_us \
                 FROM now LEFT JOIN won ON true LEFT JOIN prev ON true"
            )),
            renew: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at) \
                 UPDATE {table} AS l SET expires_at = now.at + $3 * interval '1 millisecond' FROM now \
                 WHERE l.name = $1 AND l.owner = $2 AND l.expires_at > now.at \
                 RETURNING l.token"
            )),
            release: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at), \
                 prev AS (SELECT l.owner, l.expires_at > now.at AS live FROM {table} AS l, now WHERE l.name = $1), \
                 freed AS ( \
                   UPDATE {table} AS l SET owner = NULL, expires_at = NULL FROM now \
                   WHERE l.name = $1 AND l.owner = $2 AND l.expires_at > now.at \
                   RETURNING l.name \
                 ), \
                 notified AS (SELECT pg_notify($3, name || {}) FROM freed) \
                 SELECT (SELECT count(*) FROM notified) AS released, prev.owner, \
                   coalesce(prev.live, false) AS live, {NO_FLUSH_WAIT} AS lazy \
                 FROM now LEFT JOIN prev ON true",
                first_in_line(line, "$1", None)
            )),
            force_release: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at), \
                 freed AS ( \
                   UPDATE {table} AS l SET owner = NULL, expires_at = NULL FROM now \
                   WHERE l.name = $1 AND l.expires_at > now.at \
                   RETURNING l.name \
                 ), \
                 notified AS (SELECT pg_notify($2, name || {}) FROM freed) \
                 SELECT count(*) AS released FROM notified",
                first_in_line(line, "$1", None)
            )),
            inspect: Sql::new(format!(
                "SELECT owner, token, {MICROS_LEFT} AS left_us \
                 FROM {table}, (SELECT clock_timestamp() AS at) AS now \
                 WHERE name = $1 AND owner IS NOT NULL AND expires_at > now.at"
            )),
            session_acquire: Sql::new(format!(
                "WITH step AS MATERIALIZED (SELECT pg_advisory_xact_lock($4, $5)), \
                 got AS MATERIALIZED ( \
                   SELECT CASE WHEN EXISTS ({}) THEN NULL ELSE pg_try_advisory_lock($3) END AS ok \
                   FROM step), \
                 won AS ( \
                   INSERT INTO {table} AS l (name, owner, token, expires_at) \
                   SELECT $1, $2, {FIRST_TOKEN}, NULL FROM got WHERE got.ok \
                   ON CONFLICT (name) DO UPDATE SET \
                     owner = excluded.owner, token = l.token + 1, expires_at = NULL \
                   RETURNING l.token \
                 ) \
                 SELECT got.ok, won.token FROM got LEFT JOIN won ON true",
                own_lock("$3")
            )),
            session_step_shared: Sql::new(
                "SELECT 1 AS stepped FROM (SELECT pg_advisory_xact_lock_shared($1, $2)) AS s"
                    .into(),
            ),
            session_step: Sql::new(
                "SELECT 1 AS stepped FROM (SELECT pg_advisory_xact_lock($1, $2)) AS s".into(),
            ),
            session_holder: Sql::new(format!(
                "SELECT lk.pid, l.owner, l.token FROM ({}) AS lk \
                 LEFT JOIN {table} AS l ON l.name = $1",
                advisory_lock_rows("$2")
            )),
            session_check: Sql::new(format!("SELECT EXISTS ({}) AS held", own_lock("$1"))),
            session_release: Sql::new(
                "WITH u AS MATERIALIZED (SELECT pg_advisory_unlock($1) AS ok), \
                 n AS MATERIALIZED (SELECT pg_notify($2, $3) FROM u WHERE u.ok) \
                 SELECT u.ok, (SELECT count(*) FROM n) AS notified FROM u"
                    .into(),
            ),
            session_terminate: Sql::new(format!(
                "SELECT lk.pid, pg_terminate_backend(lk.pid) AS terminated FROM ({}) AS lk",
                advisory_lock_rows("$1")
            )),
            session_held: Sql::new(format!(
                "SELECT EXISTS ({}) AS held",
                advisory_lock_rows("$1")
            )),
            notify: Sql::new("SELECT 1 AS sent FROM (SELECT pg_notify($1, $2)) AS n".into()),
        }
    }
}

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

/// The rows of `pg_locks` for the session advisory lock whose `bigint` key is parameter `key`:
/// `pid` and `mode` (`ExclusiveLock` for a writer, `ShareLock` for each reader).
fn advisory_lock_rows(key: &str) -> String {
    format!(
        "SELECT pid, mode FROM pg_locks WHERE locktype = 'advisory' \
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND classid = (({key} >> 32) & 4294967295)::oid AND objid = ({key} & 4294967295)::oid \
           AND objsubid = 1 AND granted"
    )
}

/// The readers of a session lock still holding: the entries of row `r`'s `holders` (`[]`
/// unless `r`'s owner is [`MANY`]) whose session (`p`, its backend pid) holds the shared
/// advisory lock of key `key`, by token, less any of this very session (which held nothing
/// before the statement that reads this: an entry of its pid is of an earlier hold). An
/// entry whose session ended, or that released, is left out: that is how a reader's record
/// goes with its session.
fn session_readers(r: &str, key: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(e ORDER BY (e->>'t')::bigint), '[]'::jsonb) \
          FROM jsonb_array_elements(CASE WHEN {r}.owner = {MANY_SQL} THEN {r}.holders END) AS e \
          WHERE (e->>'p')::integer <> pg_backend_pid() \
            AND (e->>'p')::integer IN (SELECT lk.pid FROM ({locks}) AS lk \
                                       WHERE lk.mode = 'ShareLock'))",
        locks = advisory_lock_rows(key)
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

/// The owner column of a name held by shared leases or permits: not an owner id (those have no
/// `*`), so that the exclusive statements, which look only at `owner` and `expires_at`, see the
/// name as held until the last of those leases runs out (and so would a client of an earlier
/// version of this crate, which knows nothing of the others).
pub(crate) const MANY: &str = "*";

/// [`MANY`] as an SQL literal.
const MANY_SQL: &str = "'*'";

/// [`SHARED_CAPACITY`](lock_core::SHARED_CAPACITY), the capacity and weight of an exclusive
/// lease, as SQL.
const FULL: &str = "1000000000";

/// The `now` CTE of a statement that reads the leases of a name held by many: the instant, and
/// the same in microseconds since the epoch (the unit of the `holders` entries' expiries).
const NOW_US: &str = "now AS MATERIALIZED (SELECT t.at, \
       (extract(epoch FROM t.at) * 1000000)::bigint AS us \
     FROM (SELECT clock_timestamp() AS at) AS t)";

/// The live entries of row `r`'s `holders` (`[]` unless `r` is held by many), by token.
fn live_entries(r: &str) -> String {
    format!(
        "(SELECT coalesce(jsonb_agg(h ORDER BY (h->>'t')::bigint), '[]'::jsonb) \
          FROM jsonb_array_elements(CASE WHEN {r}.owner = {MANY_SQL} THEN {r}.holders END) AS h, now \
          WHERE (h->>'e')::bigint > now.us)"
    )
}

/// A derived table of one row: what row `r` (of the lock table; all columns NULL for a name
/// without a row) says to a claim of owner `$2`, capacity `$4`, weight `$5`, with the places in
/// line ahead of it weighing `ahead`: `x_owner` (the live exclusive holder), `live` (the live
/// shared or permit leases), `used`, `cap` (the capacity in force, NULL while open) and
/// `decision`: `again`, `grant`, `full`, `behind` or `mismatch`, the answers of
/// [`raw::admit`](lock_core::raw::admit), written in SQL.
///
/// `OFFSET 0` keeps the planner from pulling the two inner sub-selects up into this one: pulled
/// up, every reference to `live`, `used` and `cap` below would be a copy of its expression, the
/// `holders` array unpacked once per copy, a plan of about 200 nodes whose set-up alone cost
/// more than the exclusive lease's whole statement. Fenced, each is computed once.
fn state(r: &str, ahead: &str) -> String {
    format!(
        "(SELECT s.x_owner, s.live, s.used, s.cap, \
           CASE WHEN s.x_owner = $2 THEN CASE WHEN $5 = {FULL} THEN 'again' ELSE 'mismatch' END \
                WHEN s.mine THEN CASE WHEN s.cap = $4 AND $5 = 1 THEN 'again' ELSE 'mismatch' END \
                WHEN s.cap <> $4 THEN 'mismatch' \
                WHEN s.used + $5 > $4 THEN 'full' \
                WHEN s.used + {ahead} + $5 > $4 THEN 'behind' \
                ELSE 'grant' END AS decision \
         FROM (SELECT x.x_owner, m.live, \
                 CASE WHEN x.x_owner IS NOT NULL THEN {FULL}::bigint \
                      ELSE jsonb_array_length(m.live)::bigint END AS used, \
                 CASE WHEN x.x_owner IS NOT NULL THEN {FULL} \
                      WHEN jsonb_array_length(m.live) > 0 THEN {r}.capacity END AS cap, \
                 m.live @> jsonb_build_array(jsonb_build_object('o', $2::text)) AS mine \
               FROM (SELECT CASE WHEN {r}.owner <> {MANY_SQL} AND {r}.expires_at > now.at \
                                 THEN {r}.owner END AS x_owner FROM now) AS x, \
                    (SELECT {live} AS live OFFSET 0) AS m OFFSET 0) AS s)",
        live = live_entries(r)
    )
}

/// A sub-select of the new `(owner, token, expires_at, capacity, holders)` of row `r` once the
/// claim (`$2` owner, `$3` ttl in ms, `$4` capacity, `$5` weight) is granted or taken again
/// ([`state`]'s decision `again` or `grant`).
fn granted(r: &str, ahead: &str) -> String {
    format!(
        "SELECT CASE WHEN $5 = {FULL} THEN $2 ELSE {MANY_SQL} END, \
           CASE WHEN d.decision = 'again' THEN {r}.token ELSE {r}.token + 1 END, \
           CASE WHEN $5 = {FULL} THEN now.at + $3 * interval '1 millisecond' \
                ELSE 'epoch'::timestamptz + (SELECT max((e->>'e')::bigint) \
                                             FROM jsonb_array_elements(n.h) AS e) \
                                            * interval '1 microsecond' END, \
           CASE WHEN $5 = {FULL} THEN NULL ELSE $4 END, \
           n.h \
         FROM {st} AS d, now, LATERAL (SELECT CASE \
             WHEN $5 = {FULL} THEN NULL \
             WHEN d.decision = 'again' THEN (SELECT jsonb_agg(CASE WHEN e->>'o' = $2 \
                 THEN jsonb_set(e, '{{e}}', to_jsonb(now.us + $3 * 1000)) ELSE e END \
                 ORDER BY (e->>'t')::bigint) FROM jsonb_array_elements(d.live) AS e) \
             ELSE d.live || jsonb_build_array(jsonb_build_object( \
                 'o', $2::text, 't', {r}.token + 1, 'e', now.us + $3 * 1000)) END AS h) AS n",
        st = state(r, ahead)
    )
}

/// The statement text that grants a claim (`$1` name, `$2` owner, `$3` ttl in ms, `$4`
/// capacity, `$5` weight) when `cur`'s decision on the snapshot allows it and [`state`]'s on
/// the row's newest version still does; returns `token`, the caller's token.
fn grant(table: &str, ahead: &str) -> String {
    format!(
        "INSERT INTO {table} AS l (name, owner, token, expires_at, capacity, holders) \
         SELECT $1, CASE WHEN $5 = {FULL} THEN $2 ELSE {MANY_SQL} END, greatest(now.us, 1), \
           now.at + $3 * interval '1 millisecond', \
           CASE WHEN $5 = {FULL} THEN NULL ELSE $4 END, \
           CASE WHEN $5 = {FULL} THEN NULL ELSE jsonb_build_array(jsonb_build_object( \
             'o', $2::text, 't', greatest(now.us, 1), 'e', now.us + $3 * 1000)) END \
         FROM now, cur WHERE cur.decision IN ('grant', 'again') \
         ON CONFLICT (name) DO UPDATE SET (owner, token, expires_at, capacity, holders) = ({new}) \
         WHERE (SELECT d.decision FROM {st} AS d) IN ('grant', 'again') \
         RETURNING CASE WHEN l.owner = {MANY_SQL} \
           THEN (SELECT (e->>'t')::bigint FROM jsonb_array_elements(l.holders) AS e \
                 WHERE e->>'o' = $2) \
           ELSE l.token END AS token",
        new = granted("l", ahead),
        st = state("l", ahead),
    )
}

/// The CTEs `prev` (the name's row in the snapshot), `cur` ([`state`] of it) and `soon` (the
/// live holder whose lease runs out first: `owner`, `token`, `left_us`), for a claim.
fn claim_ctes(table: &str, ahead: &str) -> String {
    format!(
        "prev AS MATERIALIZED (SELECT l.owner, l.token, l.expires_at, l.capacity, l.holders \
                               FROM {table} AS l WHERE l.name = $1), \
         cur AS MATERIALIZED (SELECT d.* FROM (SELECT 1) AS one LEFT JOIN prev ON true \
                              CROSS JOIN LATERAL {st} AS d), \
         soon AS MATERIALIZED ( \
           SELECT cur.x_owner AS owner, prev.token, \
             (extract(epoch FROM prev.expires_at - now.at) * 1000000)::bigint AS left_us \
           FROM cur, prev, now WHERE cur.x_owner IS NOT NULL \
           UNION ALL \
           (SELECT e->>'o', (e->>'t')::bigint, (e->>'e')::bigint - now.us \
            FROM cur, now, jsonb_array_elements(cur.live) AS e \
            ORDER BY (e->>'e')::bigint, (e->>'t')::bigint LIMIT 1))",
        st = state("prev", ahead)
    )
}

/// The select list of a claim's answer after [`claim_ctes`] and a `won` CTE, in a `FROM cur
/// LEFT JOIN won ON true LEFT JOIN soon ON true`.
const CLAIM_ANSWER: &str = "won.token AS won, cur.decision, \
       soon.owner AS soon_owner, soon.token AS soon_token, soon.left_us AS soon_left_us, \
       CASE WHEN cur.x_owner IS NOT NULL THEN 1000000000 ELSE cur.cap END AS held_cap, \
       CASE WHEN cur.x_owner IS NOT NULL THEN 1000000000 ELSE 1 END AS held_w";

/// The live leases of a name's row `r` as `used` (their weights) and `cap` (the capacity in
/// force, NULL when none is live), for a derived table.
fn held(r: &str) -> String {
    format!(
        "CASE WHEN {r}.owner <> {MANY_SQL} AND {r}.expires_at > now.at THEN {FULL}::bigint \
              WHEN {r}.owner = {MANY_SQL} THEN (SELECT count(*) \
                FROM jsonb_array_elements({r}.holders) AS e WHERE (e->>'e')::bigint > now.us) \
              ELSE 0 END AS used, \
         CASE WHEN {r}.owner <> {MANY_SQL} AND {r}.expires_at > now.at THEN {FULL} \
              WHEN {r}.owner = {MANY_SQL} AND {r}.expires_at > now.at THEN {r}.capacity END AS cap"
    )
}

/// What a NOTIFY for name parameter `name` adds to its payload (an expression, in a statement
/// with the `now` CTE), when the name's live leases weigh `used` of capacity `cap` (NULL when
/// none is live), leaving out owner parameter `leaving`: nothing when no one stands in line
/// (every waiter of the name wakes); else a newline and the owners at the front of the line
/// that the room serves, each after a newline, as [`raw::servable`](lock_core::raw::servable)
/// counts them (none: no turn wakes). The listener then wakes only those owners' turns. More
/// than 32 of them: nothing, as for an empty line. Names and owners have no control
/// characters, so the payload splits at its newlines.
fn turns(line: &str, name: &str, used: &str, cap: &str, leaving: Option<&str>) -> String {
    let others = leaving.map_or(String::new(), |owner| format!("AND q.owner <> {owner} "));
    format!(
        "(SELECT CASE WHEN count(*) = 0 OR count(*) FILTER (WHERE z.served) > 32 THEN '' \
                 ELSE E'\\n' || coalesce(string_agg(z.owner, E'\\n' ORDER BY z.n) \
                                         FILTER (WHERE z.served), '') END \
          FROM (SELECT y.owner, y.n, \
                  (y.odd = 0 AND {used} + y.cum <= y.c) \
                  OR (y.odd = 1 AND y.capacity <> y.c AND {used} + y.cum - y.weight <= y.c) AS served \
                FROM (SELECT x.owner, x.n, x.capacity, x.weight, x.c, \
                        sum(x.weight) OVER w AS cum, \
                        count(*) FILTER (WHERE x.capacity <> x.c) OVER w AS odd \
                      FROM (SELECT q.owner, q.capacity, q.weight::bigint AS weight, \
                              row_number() OVER w AS n, \
                              coalesce({cap}, first_value(q.capacity) OVER w) AS c \
                            FROM {line} AS q, now \
                            WHERE q.name = {name} {others}AND q.kept_until > now.at \
                            WINDOW w AS (ORDER BY q.joined, q.owner)) AS x \
                      WINDOW w AS (ORDER BY x.n)) AS y) AS z)"
    )
}

/// The table's definition; the same for both modes.
pub(crate) fn create_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ( \
           name text COLLATE \"C\" PRIMARY KEY, \
           owner text, \
           token bigint NOT NULL CHECK (token > 0), \
           expires_at timestamptz, \
           capacity integer, \
           holders jsonb \
         ); \
         COMMENT ON TABLE {table} IS 'lock-postgres: one row per lock name, never deleted, so \
           that fencing tokens keep rising; owner and expires_at are NULL while it is open; \
           owner is * while shared leases or permits hold it (in holders, of capacity); in \
           session mode, * while readers hold it, each in holders with its backend pid, \
           counted only while that session holds the shared advisory lock'"
    )
}

/// The columns added to a lock table since its first version, for tables made before them:
/// the shared leases and permits of a name.
pub(crate) fn add_table_columns(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS capacity integer, \
           ADD COLUMN IF NOT EXISTS holders jsonb"
    )
}

/// The columns added to a line table since its first version: the kind each place asks for.
pub(crate) fn add_line_columns(line: &str) -> String {
    format!(
        "ALTER TABLE {line} ADD COLUMN IF NOT EXISTS capacity integer NOT NULL DEFAULT {FULL}, \
           ADD COLUMN IF NOT EXISTS weight integer NOT NULL DEFAULT {FULL}"
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
           capacity integer NOT NULL DEFAULT {FULL}, \
           weight integer NOT NULL DEFAULT {FULL}, \
           PRIMARY KEY (name, owner) \
         ); \
         COMMENT ON TABLE {line} IS 'lock-postgres: the waiters in line per lock name, first \
           joined first served, each with the capacity and weight of its claim; a place whose \
           kept_until passed is gone'"
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
    /// Lease try acquire of any kind (shared leases, permits, and an exclusive claim that
    /// [`acquire`](Self::acquire) did not settle): `$1` name, `$2` owner, `$3` ttl in ms, `$4`
    /// capacity, `$5` weight. One row: `won` (the token when granted or taken again),
    /// `decision` ([`state`]'s on the snapshot: `again`, `grant`, `full`, `mismatch`), `soon_*`
    /// (the live holder whose lease runs out first), `held_cap` and `held_w` (the kind in
    /// force). Decided on the row's newest version under its row lock by the `ON CONFLICT`
    /// update's `WHERE`; tried only when the snapshot allows it.
    pub(crate) claim: Sql,
    /// Lease try acquire of a shared lease or a permit where there is plainly room: `$1` name,
    /// `$2` owner, `$3` ttl in ms, `$4` capacity. A row with `token` when granted: the name's
    /// row was open (no lease, or every one run out), or held by shared leases or permits of
    /// capacity `$4` with fewer than `$4` live and none of them the caller's. No row otherwise
    /// (held by another kind, full, the caller's own lease, a name never used): then
    /// [`claim`](Self::claim) decides and answers.
    ///
    /// [`claim`](Self::claim) alone would do, but it judges the row twice (on the snapshot, to
    /// answer, and on the newest version, to write) and its plan is over four times this
    /// one's, whose set-up every call pays: a permit cost 1.2–1.5× an exclusive lease with it
    /// alone, against 1.0–1.1× with this first (`lock-bench`'s `permit_vs_exclusive`). An
    /// `UPDATE` judges its `WHERE` again on the row's newest version after waiting for another
    /// writer, so the room is counted on what it writes over; a refusal takes no row lock.
    pub(crate) take_room: Sql,
    /// Lease try acquire in line: `$1` name, `$2` owner, `$3` ttl in ms, `$4` capacity, `$5`
    /// weight, `$6` patience in ms, `$7` channel or NULL. One row: as [`claim`](Self::claim)
    /// (with `behind` as a decision: room for the claim but not also for the places ahead),
    /// `first_left_ms` (how long the first place ahead is kept) and `passed` (0 or 1).
    ///
    /// The caller's place counts from when it joined, unless it lapsed (then it joins at the
    /// back), and records its claim's capacity and weight; the weights of the live places
    /// ahead of it are added to the live leases' to decide. The lock row is tried only when
    /// the snapshot allows it, so a waiter behind writes only the line, which is unlogged: no
    /// flush; and a place kept for over half the patience already (for the same kind) is not
    /// rewritten, so a waiter that asks often mostly only reads. Lapsed places of others are
    /// deleted on the way. A claim of a mismatched kind takes no place.
    ///
    /// With a channel (the caller was named by a NOTIFY since its last try), a caller that
    /// stood in line and finds room for itself but another's place ahead NOTIFYs that one's
    /// turn (`passed`): a place's `joined` is its statement's start, but it shows only once
    /// that statement commits, so a place that joined earlier can show after a release named
    /// the waiter it then stands ahead of, and no one else would wake it (until it looked
    /// again, within 200 ms).
    pub(crate) in_line: Sql,
    /// Leave the line: `$1` name, `$2` owner, `$3` channel. One row: `gone` (0 or 1), `woke`
    /// (0 or 1). When a place went and the name is open or has room for the front of the
    /// line, NOTIFY naming the waiters now served ([`turns`]), so that they look again.
    pub(crate) leave_line: Sql,
    /// Lease renew: `$1` name, `$2` owner, `$3` ttl in ms. A row with `token`, `cap` and `w`
    /// (the lease's kind) when renewed; only the owner's own lease moves.
    pub(crate) renew: Sql,
    /// Lease release: `$1` name, `$2` owner, `$3` channel. One row: `released` (0 or 1), the
    /// row as it was before (`owner`, `live`, `mine`: the owner's shared lease or permit was
    /// live). Ends only the owner's lease; NOTIFY naming the waiters the freed room serves
    /// ([`turns`]). Commits without waiting for the disk ([`NO_FLUSH_WAIT`]); every other
    /// lease statement that writes the lock table waits.
    pub(crate) release: Sql,
    /// Lease force release: `$1` name, `$2` channel. One row: `released` (0 or 1). Every
    /// lease of the name ends; NOTIFY naming the waiters at the front that the room serves.
    pub(crate) force_release: Sql,
    /// Lease inspect: `$1` name. A row per live holder: `owner`, `token`, `left_us`, `cap`
    /// (NULL for an exclusive lease, the capacity of a shared lease or permit).
    pub(crate) inspect: Sql,
    /// Session try acquire on the connection that is to hold it: `$1` name, `$2` owner, `$3`
    /// key, `$4`/`$5` the key's halves (the per-name step lock), `$6` shared (a reader's
    /// `pg_try_advisory_lock_shared`, else a writer's `pg_try_advisory_lock`). One row: `ok`
    /// (NULL when this session held the key already), `token` (the next of the name's row).
    /// A writer's grant records its owner in the row; a reader's sets the row's owner to
    /// [`MANY`] and adds `{o: owner, t: token, p: backend pid}` to `holders`, dropping the
    /// entries of readers gone ([`session_readers`]). A reader whose owner already reads
    /// through another session gets `ok` but no `token`: nothing is written, and its hold is
    /// undone at once (`undone` true).
    pub(crate) session_acquire: Sql,
    /// The per-name step lock, shared, for the rest of the transaction: `$1`/`$2` halves.
    pub(crate) session_step_shared: Sql,
    /// The per-name step lock, exclusive: `$1`/`$2` halves.
    pub(crate) session_step: Sql,
    /// Who holds a session lock: `$1` name, `$2` key. A row per session holding the key:
    /// `pid`, `shared` (a reader), `owner`, `token` (NULL when the table does not name it).
    pub(crate) session_holder: Sql,
    /// Whether this connection holds key `$1`: one row, `held`.
    pub(crate) session_check: Sql,
    /// Unlock key `$1` on this connection (shared when `$4`) and NOTIFY channel `$2` with name
    /// `$3`: one row, `ok`. A reader's entry in `holders` stays until the next grant drops it;
    /// no one counts it meanwhile ([`session_readers`]).
    pub(crate) session_release: Sql,
    /// Terminate every session holding key `$1` (the writer, or every reader): a row with
    /// `pid`, `terminated` per holder.
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
                "WITH {NOW_US}, \
                 mine AS MATERIALIZED ( \
                   SELECT q.joined, q.kept_until, q.capacity, q.weight FROM {line} AS q, now \
                   WHERE q.name = $1 AND q.owner = $2 AND q.kept_until > now.at), \
                 before AS MATERIALIZED ( \
                   SELECT q.owner, q.joined, q.kept_until, q.weight FROM {line} AS q, now \
                   WHERE q.name = $1 AND q.owner <> $2 AND q.kept_until > now.at \
                     AND (NOT EXISTS (SELECT 1 FROM mine) \
                          OR (q.joined, q.owner) < ((SELECT joined FROM mine), $2::text))), \
                 head AS MATERIALIZED ( \
                   SELECT owner, kept_until FROM before ORDER BY joined, owner LIMIT 1), \
                 ahead AS MATERIALIZED ( \
                   SELECT EXISTS (SELECT 1 FROM head) AS any, \
                     (SELECT ceil(extract(epoch FROM head.kept_until - now.at) * 1000)::bigint \
                      FROM head, now) AS first_left_ms, \
                     (SELECT coalesce(sum(weight::bigint), 0) FROM before) AS w), \
                 {ctes}, \
                 won AS ({grant}), \
                 place AS ( \
                   INSERT INTO {line} AS q (name, owner, joined, kept_until, capacity, weight) \
                   SELECT $1, $2, now.at, now.at + $6 * interval '1 millisecond', $4, $5 \
                   FROM now, cur \
                   WHERE NOT EXISTS (SELECT 1 FROM won) AND cur.decision <> 'mismatch' \
                     AND NOT EXISTS (SELECT 1 FROM mine \
                                     WHERE mine.kept_until > now.at + $6 * interval '0.5 millisecond' \
                                       AND mine.capacity = $4 AND mine.weight = $5) \
                   ON CONFLICT (name, owner) DO UPDATE SET \
                     joined = CASE WHEN q.kept_until > excluded.joined THEN q.joined ELSE excluded.joined END, \
                     kept_until = excluded.kept_until, \
                     capacity = excluded.capacity, weight = excluded.weight \
                   RETURNING 1 \
                 ), \
                 gone AS ( \
                   DELETE FROM {line} AS q USING now \
                   WHERE q.name = $1 AND ((q.owner = $2 AND EXISTS (SELECT 1 FROM won)) \
                                          OR (q.owner <> $2 AND q.kept_until <= now.at)) \
                   RETURNING 1 \
                 ), \
                 passed AS ( \
                   SELECT pg_notify($7, $1 || E'\\n' || head.owner) FROM head, cur \
                   WHERE $7::text IS NOT NULL AND EXISTS (SELECT 1 FROM mine) \
                     AND cur.decision = 'behind' \
                 ) \
                 SELECT {CLAIM_ANSWER}, ahead.first_left_ms, (SELECT count(*) FROM passed) AS passed \
                 FROM cur CROSS JOIN ahead LEFT JOIN won ON true LEFT JOIN soon ON true",
                ctes = claim_ctes(table, "(SELECT w FROM ahead)"),
                grant = grant(table, "(SELECT w FROM ahead)"),
            )),
            take_room: Sql::new(format!(
                "WITH {NOW_US} \
                 UPDATE {table} AS l SET owner = {MANY_SQL}, capacity = $4, token = l.token + 1, \
                   expires_at = greatest( \
                     CASE WHEN l.owner = {MANY_SQL} AND l.expires_at > now.at THEN l.expires_at END, \
                     now.at + $3 * interval '1 millisecond'), \
                   holders = CASE WHEN l.owner = {MANY_SQL} AND l.expires_at > now.at \
                       THEN (SELECT coalesce(jsonb_agg(h ORDER BY (h->>'t')::bigint), '[]'::jsonb) \
                             FROM jsonb_array_elements(l.holders) AS h \
                             WHERE (h->>'e')::bigint > now.us) \
                       ELSE '[]'::jsonb END \
                     || jsonb_build_array(jsonb_build_object( \
                          'o', $2::text, 't', l.token + 1, 'e', now.us + $3 * 1000)) \
                 FROM now \
                 WHERE l.name = $1 \
                   AND (l.owner IS NULL OR l.expires_at IS NULL OR l.expires_at <= now.at \
                        OR (l.owner = {MANY_SQL} AND l.capacity = $4 \
                            AND (SELECT count(*) FILTER (WHERE (h->>'e')::bigint > now.us) \
                                   + {FULL} * count(*) FILTER ( \
                                       WHERE h->>'o' = $2 AND (h->>'e')::bigint > now.us) \
                                 FROM jsonb_array_elements(l.holders) AS h) < $4)) \
                 RETURNING l.token"
            )),
            claim: Sql::new(format!(
                "WITH {NOW_US}, {ctes}, won AS ({grant}) \
                 SELECT {CLAIM_ANSWER} FROM cur LEFT JOIN won ON true LEFT JOIN soon ON true",
                ctes = claim_ctes(table, "0"),
                grant = grant(table, "0"),
            )),
            leave_line: Sql::new(format!(
                "WITH {NOW_US}, \
                 gone AS (DELETE FROM {line} WHERE name = $1 AND owner = $2 RETURNING name), \
                 st AS MATERIALIZED ( \
                   SELECT coalesce(h.used, 0) AS used, h.cap FROM (SELECT 1) AS one LEFT JOIN \
                     (SELECT {held} FROM {table} AS l, now WHERE l.name = $1) AS h ON true), \
                 woken AS MATERIALIZED (SELECT {turns} AS t FROM st, now), \
                 notified AS ( \
                   SELECT pg_notify($3, gone.name || woken.t) FROM gone, st, woken \
                   WHERE st.used = 0 OR woken.t LIKE E'\\n_%') \
                 SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM notified) AS woke",
                held = held("l"),
                turns = turns(line, "$1", "st.used", "st.cap", Some("$2")),
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
                "WITH {NOW_US} \
                 UPDATE {table} AS l SET (expires_at, holders) = ( \
                   SELECT CASE WHEN l.owner = $2 THEN now.at + $3 * interval '1 millisecond' \
                               ELSE 'epoch'::timestamptz + r.last * interval '1 microsecond' END, \
                          CASE WHEN l.owner = $2 THEN l.holders ELSE r.h END \
                   FROM now, LATERAL ( \
                     SELECT jsonb_agg(CASE WHEN e->>'o' = $2 \
                              THEN jsonb_set(e, '{{e}}', to_jsonb(now.us + $3 * 1000)) ELSE e END \
                              ORDER BY (e->>'t')::bigint) AS h, \
                            max(CASE WHEN e->>'o' = $2 THEN now.us + $3 * 1000 \
                                     ELSE (e->>'e')::bigint END) AS last \
                     FROM jsonb_array_elements(CASE WHEN l.owner = {MANY_SQL} THEN l.holders END) AS e \
                     WHERE (e->>'e')::bigint > now.us) AS r) \
                 FROM now \
                 WHERE l.name = $1 AND l.expires_at > now.at \
                   AND (l.owner = $2 OR (l.owner = {MANY_SQL} AND EXISTS ( \
                     SELECT 1 FROM jsonb_array_elements(l.holders) AS e \
                     WHERE e->>'o' = $2 AND (e->>'e')::bigint > now.us))) \
                 RETURNING CASE WHEN l.owner = {MANY_SQL} \
                     THEN (SELECT (e->>'t')::bigint FROM jsonb_array_elements(l.holders) AS e \
                           WHERE e->>'o' = $2) \
                     ELSE l.token END AS token, \
                   CASE WHEN l.owner = {MANY_SQL} THEN l.capacity ELSE {FULL} END AS cap, \
                   CASE WHEN l.owner = {MANY_SQL} THEN 1 ELSE {FULL} END AS w"
            )),
            release: Sql::new(format!(
                "WITH {NOW_US}, \
                 prev AS (SELECT l.owner, l.expires_at > now.at AS live, \
                            l.owner = {MANY_SQL} AND EXISTS ( \
                              SELECT 1 FROM jsonb_array_elements(l.holders) AS e \
                              WHERE e->>'o' = $2 AND (e->>'e')::bigint > now.us) AS mine \
                          FROM {table} AS l, now WHERE l.name = $1), \
                 freed AS ( \
                   UPDATE {table} AS l SET (owner, expires_at, capacity, holders) = ( \
                     SELECT CASE WHEN l.owner = $2 OR r.h IS NULL THEN NULL ELSE {MANY_SQL} END, \
                            CASE WHEN l.owner = $2 OR r.h IS NULL THEN NULL \
                                 ELSE 'epoch'::timestamptz + r.last * interval '1 microsecond' END, \
                            CASE WHEN l.owner = $2 OR r.h IS NULL THEN NULL ELSE l.capacity END, \
                            r.h \
                     FROM now, LATERAL ( \
                       SELECT jsonb_agg(e ORDER BY (e->>'t')::bigint) AS h, \
                              max((e->>'e')::bigint) AS last \
                       FROM jsonb_array_elements(CASE WHEN l.owner = {MANY_SQL} THEN l.holders END) AS e \
                       WHERE (e->>'e')::bigint > now.us AND e->>'o' <> $2) AS r) \
                   FROM now \
                   WHERE l.name = $1 AND l.expires_at > now.at \
                     AND (l.owner = $2 OR (l.owner = {MANY_SQL} AND EXISTS ( \
                       SELECT 1 FROM jsonb_array_elements(l.holders) AS e \
                       WHERE e->>'o' = $2 AND (e->>'e')::bigint > now.us))) \
                   RETURNING l.name, \
                     CASE WHEN l.owner = {MANY_SQL} THEN jsonb_array_length(l.holders) ELSE 0 END AS used, \
                     CASE WHEN l.owner = {MANY_SQL} THEN l.capacity END AS cap \
                 ), \
                 notified AS (SELECT pg_notify($3, freed.name || {turns}) FROM freed) \
                 SELECT (SELECT count(*) FROM notified) AS released, prev.owner, \
                   coalesce(prev.live, false) AS live, coalesce(prev.mine, false) AS mine, \
                   {NO_FLUSH_WAIT} AS lazy \
                 FROM now LEFT JOIN prev ON true",
                turns = turns(line, "$1", "freed.used", "freed.cap", None)
            )),
            force_release: Sql::new(format!(
                "WITH now AS MATERIALIZED (SELECT clock_timestamp() AS at), \
                 freed AS ( \
                   UPDATE {table} AS l \
                   SET owner = NULL, expires_at = NULL, capacity = NULL, holders = NULL FROM now \
                   WHERE l.name = $1 AND l.expires_at > now.at \
                   RETURNING l.name \
                 ), \
                 notified AS (SELECT pg_notify($2, name || {}) FROM freed) \
                 SELECT count(*) AS released FROM notified",
                turns(line, "$1", "0", "NULL::integer", None)
            )),
            inspect: Sql::new(format!(
                "WITH {NOW_US} \
                 SELECT l.owner, l.token, {MICROS_LEFT} AS left_us, NULL::integer AS cap \
                 FROM {table} AS l, now \
                 WHERE l.name = $1 AND l.owner IS NOT NULL AND l.owner <> {MANY_SQL} \
                   AND l.expires_at > now.at \
                 UNION ALL \
                 SELECT e->>'o', (e->>'t')::bigint, (e->>'e')::bigint - now.us, l.capacity \
                 FROM {table} AS l, now, jsonb_array_elements(l.holders) AS e \
                 WHERE l.name = $1 AND l.owner = {MANY_SQL} AND (e->>'e')::bigint > now.us"
            )),
            session_acquire: Sql::new(format!(
                "WITH step AS MATERIALIZED (SELECT pg_advisory_xact_lock($4, $5)), \
                 got AS MATERIALIZED ( \
                   SELECT CASE WHEN EXISTS ({own}) THEN NULL \
                               WHEN $6 THEN pg_try_advisory_lock_shared($3) \
                               ELSE pg_try_advisory_lock($3) END AS ok, \
                          {FIRST_TOKEN} AS first \
                   FROM step), \
                 won AS ( \
                   INSERT INTO {table} AS l (name, owner, token, expires_at, capacity, holders) \
                   SELECT $1, CASE WHEN $6 THEN {MANY_SQL} ELSE $2::text END, got.first, NULL, NULL, \
                     CASE WHEN $6 THEN jsonb_build_array(jsonb_build_object( \
                       'o', $2::text, 't', got.first, 'p', pg_backend_pid())) END \
                   FROM got WHERE got.ok \
                   ON CONFLICT (name) DO UPDATE SET \
                     owner = excluded.owner, token = l.token + 1, expires_at = NULL, \
                     capacity = NULL, \
                     holders = CASE WHEN $6 THEN {readers} || jsonb_build_array(jsonb_build_object( \
                       'o', $2::text, 't', l.token + 1, 'p', pg_backend_pid())) END \
                   WHERE NOT ($6 AND EXISTS ( \
                     SELECT 1 FROM jsonb_array_elements({readers}) AS e WHERE e->>'o' = $2::text)) \
                   RETURNING l.token \
                 ) \
                 SELECT got.ok, won.token, \
                   CASE WHEN $6 AND got.ok AND won.token IS NULL \
                        THEN pg_advisory_unlock_shared($3) END AS undone \
                 FROM got LEFT JOIN won ON true",
                own = own_lock("$3"),
                readers = session_readers("l", "$3"),
            )),
            session_step_shared: Sql::new(
                "SELECT 1 AS stepped FROM (SELECT pg_advisory_xact_lock_shared($1, $2)) AS s"
                    .into(),
            ),
            session_step: Sql::new(
                "SELECT 1 AS stepped FROM (SELECT pg_advisory_xact_lock($1, $2)) AS s".into(),
            ),
            session_holder: Sql::new(format!(
                "SELECT lk.pid, lk.mode = 'ShareLock' AS shared, \
                   CASE WHEN lk.mode = 'ShareLock' THEN r.e->>'o' \
                        WHEN l.owner <> {MANY_SQL} THEN l.owner END AS owner, \
                   CASE WHEN lk.mode = 'ShareLock' THEN (r.e->>'t')::bigint \
                        WHEN l.owner <> {MANY_SQL} THEN l.token END AS token \
                 FROM ({locks}) AS lk \
                 LEFT JOIN {table} AS l ON l.name = $1 \
                 LEFT JOIN LATERAL ( \
                   SELECT e FROM jsonb_array_elements( \
                     CASE WHEN lk.mode = 'ShareLock' AND l.owner = {MANY_SQL} THEN l.holders END) AS e \
                   WHERE (e->>'p')::integer = lk.pid \
                   ORDER BY (e->>'t')::bigint DESC LIMIT 1) AS r ON true",
                locks = advisory_lock_rows("$2")
            )),
            session_check: Sql::new(format!("SELECT EXISTS ({}) AS held", own_lock("$1"))),
            session_release: Sql::new(
                "WITH u AS MATERIALIZED (SELECT CASE WHEN $4 THEN pg_advisory_unlock_shared($1) \
                                                     ELSE pg_advisory_unlock($1) END AS ok), \
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

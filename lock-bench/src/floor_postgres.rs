//! The Postgres floors, with the same driver (`sqlx`) on one connection each:
//!
//! - the advisory-lock floor: `pg_try_advisory_lock` + `pg_advisory_unlock`, which write
//!   nothing to disk;
//! - the bare SQL of the lease mode: `lock-postgres`'s own acquire and release statements
//!   (from `lock_postgres::lease_statements`), sent as they are, on a table the bench creates
//!   (and an empty waiters' line table beside it, which the release reads).
//!   The durability section runs it on a logged and an unlogged table, with
//!   `synchronous_commit` on and off;
//! - the handoff floor: the same bare SQL handing one name back and forth between two
//!   connections of one process, the taker woken by the release's NOTIFY on a LISTEN
//!   connection of its own; a handoff is the release sent → the taker's acquire answered. Two
//!   durable commits and a NOTIFY in series, on an idle machine: what a contended handoff
//!   cannot beat.

use std::sync::Arc;

use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{AssertSqlSafe, Connection, Row};

use crate::Res;
use crate::rounds::{BoxFuture, Side};
use crate::stats::Spread;

/// The lease table's definition, as `lock-postgres` creates it (`UNLOGGED` optional).
fn create_table(table: &str, logged: bool) -> String {
    let unlogged = if logged { "" } else { "UNLOGGED " };
    format!(
        "DROP TABLE IF EXISTS {table}; \
         CREATE {unlogged}TABLE {table} ( \
           name text COLLATE \"C\" PRIMARY KEY, \
           owner text, \
           token bigint NOT NULL CHECK (token > 0), \
           expires_at timestamptz \
         )"
    )
}

/// `pg_try_advisory_lock` + `pg_advisory_unlock` on one connection.
pub struct AdvisoryCycle {
    conn: PgConnection,
    key: i64,
}

impl AdvisoryCycle {
    /// Cycles on advisory key `key` over a connection of its own.
    pub async fn connect(url: &str, key: i64) -> Res<Self> {
        Ok(Self {
            conn: PgConnection::connect(url).await?,
            key,
        })
    }
}

impl Side for AdvisoryCycle {
    fn label(&self) -> String {
        "floor: pg_try_advisory_lock + unlock".into()
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                .bind(self.key)
                .fetch_one(&mut self.conn)
                .await?
                .try_get(0)?;
            if !got {
                return Err("floor: the advisory lock was taken".into());
            }
            let freed: bool = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .fetch_one(&mut self.conn)
                .await?
                .try_get(0)?;
            if !freed {
                return Err("floor: the advisory unlock found nothing".into());
            }
            Ok(())
        })
    }
}

/// How the bare lease SQL's table and session are set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability {
    /// An ordinary table (`false`: `UNLOGGED`).
    pub logged: bool,
    /// `synchronous_commit` on for the session.
    pub synchronous_commit: bool,
}

impl Durability {
    /// `logged, sync on`, for labels.
    pub fn label(self) -> String {
        format!(
            "{}, synchronous_commit={}",
            if self.logged { "logged" } else { "unlogged" },
            if self.synchronous_commit { "on" } else { "off" }
        )
    }
}

/// `lock-postgres`'s lease acquire + release statements, sent bare on one connection.
pub struct LeaseSqlCycle {
    bare: Bare,
    durability: Durability,
}

impl LeaseSqlCycle {
    /// Creates table `table` (dropping one of that name) as `durability` says, and its line
    /// table `<table>_line`, and cycles on one name in it over a connection of its own.
    pub async fn connect(url: &str, table: &str, durability: Durability) -> Res<Self> {
        let (acquire, release) = create_tables(url, table, durability.logged).await?;
        let mut bare = Bare::connect(url, acquire, release, OWNER).await?;
        let setting = if durability.synchronous_commit {
            "on"
        } else {
            "off"
        };
        sqlx::raw_sql(AssertSqlSafe(format!("SET synchronous_commit = {setting}")))
            .execute(&mut bare.conn)
            .await?;
        Ok(Self { bare, durability })
    }
}

impl Side for LeaseSqlCycle {
    fn label(&self) -> String {
        format!("bare lease SQL ({})", self.durability.label())
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            self.bare.acquire("bench").await?;
            self.bare.release("bench", "lock_bench").await
        })
    }
}

/// An owner for the bare SQL.
const OWNER: &str = "0123456789abcdef0123456789abcdef";

/// Creates lease table `table` (dropping one of that name; `UNLOGGED` unless `logged`) and its
/// line table `<table>_line`; the acquire and release statements for them.
async fn create_tables(url: &str, table: &str, logged: bool) -> Res<(Arc<str>, Arc<str>)> {
    let line = format!("{table}_line");
    let (create_line, acquire, release) = lock::postgres::lease_statements(table, &line);
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "{}; DROP TABLE IF EXISTS {line}; {create_line}",
        create_table(table, logged)
    )))
    .execute(&mut conn)
    .await?;
    Ok((acquire.into(), release.into()))
}

/// The bare lease SQL on one connection: `acquire` and `release` as `lock-postgres` sends them.
struct Bare {
    conn: PgConnection,
    acquire: Arc<str>,
    release: Arc<str>,
    owner: &'static str,
}

impl Bare {
    async fn connect(
        url: &str,
        acquire: Arc<str>,
        release: Arc<str>,
        owner: &'static str,
    ) -> Res<Self> {
        Ok(Self {
            conn: PgConnection::connect(url).await?,
            acquire,
            release,
            owner,
        })
    }

    async fn acquire(&mut self, name: &str) -> Res<()> {
        let row = sqlx::query(AssertSqlSafe(self.acquire.clone()))
            .bind(name)
            .bind(self.owner)
            .bind(30_000_i64)
            .fetch_one(&mut self.conn)
            .await?;
        match row.try_get::<Option<i64>, _>("won")? {
            Some(_) => Ok(()),
            None => Err("bare lease SQL: acquire did not win".into()),
        }
    }

    /// Releases, NOTIFYing `channel`.
    async fn release(&mut self, name: &str, channel: &str) -> Res<()> {
        let row = sqlx::query(AssertSqlSafe(self.release.clone()))
            .bind(name)
            .bind(self.owner)
            .bind(channel)
            .fetch_one(&mut self.conn)
            .await?;
        match row.try_get::<i64, _>("released")? {
            1 => Ok(()),
            _ => Err("bare lease SQL: release freed nothing".into()),
        }
    }
}

/// The handoff floor (see the module doc): `turns` handoffs from a giver to a taker on a
/// fresh logged table `table` (and its line table), each timed from the giver's release sent
/// to the taker's acquire answered.
pub async fn handoff(url: &str, table: &str, turns: usize) -> Res<Spread> {
    let (acquire, release) = create_tables(url, table, true).await?;
    let mut giver = Bare::connect(url, acquire.clone(), release.clone(), OWNER).await?;
    let mut taker =
        Bare::connect(url, acquire, release, "fedcba9876543210fedcba9876543210").await?;
    let mut listener = PgListener::connect(url).await?;
    listener.listen("handoff_floor").await?;
    let name = "handoff";
    let mut samples = Vec::with_capacity(turns);
    for turn in 0..turns + turns / 10 {
        giver.acquire(name).await?;
        let start = std::time::Instant::now();
        giver.release(name, "handoff_floor").await?;
        let woken = listener.recv().await?;
        if woken.payload() != name {
            return Err(format!("handoff floor: NOTIFY {:?}", woken.payload()).into());
        }
        taker.acquire(name).await?;
        // After a tenth as many warm-up turns.
        if turn >= turns / 10 {
            samples.push(u64::try_from(start.elapsed().as_nanos())?);
        }
        taker.release(name, "handoff_floor_unheard").await?;
    }
    Ok(Spread::of_nanos(&samples))
}

/// Client sessions with `application_name` = `app`, as `pg_stat_activity` shows them.
pub async fn sessions_named(conn: &mut PgConnection, app: &str) -> Res<usize> {
    let n: i64 = sqlx::query(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = $1 AND backend_type = 'client backend'",
    )
    .bind(app)
    .fetch_one(conn)
    .await?
    .try_get(0)?;
    Ok(usize::try_from(n)?)
}

//! Names and tables: hostile names reach the server only as bind parameters, session keys
//! do not collide, and the table is created safely by racing first users.

use std::collections::HashMap;

use conformance_tests::kit::PostgresServer;
use lock_core::{
    AcquireOutcome, Claim, Error, Lock, LockName, LockState, OwnerId, ReleaseOutcome, Ttl,
};
use lock_postgres::{LeaseLock, SessionLock, advisory_key};

static SERVER: conformance_tests::kit::Shared<PostgresServer> =
    conformance_tests::kit::Shared::new(PostgresServer::start);

fn url() -> String {
    SERVER.with(PostgresServer::url)
}

fn psql(sql: &str) -> String {
    SERVER.with(|server| server.psql(sql))
}

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

/// Names that would break a statement built by pasting them in.
const HOSTILE: [&str; 16] = [
    "'",
    "''",
    "\"",
    "a'; DROP TABLE lock_leases; --",
    "x\"); DROP TABLE lock_sessions; --",
    ";",
    "--",
    "-- comment",
    "/* open",
    "\\",
    "\\\\'",
    "\\x27",
    "%",
    "%s%d%n_%",
    "$1",
    "🔒 lock ✓ 名前",
];

async fn every_name_is_its_own_lock(url: &str) {
    let any = lock_postgres::connect(url).await.unwrap();
    let mut holders = Vec::new();
    for raw in HOSTILE {
        let name = LockName::new(raw).unwrap();
        // Leftovers of an earlier run against the same server must not decide this one.
        any.force_release(&name).await.unwrap();
        let lock = lock_postgres::connect(url).await.unwrap();
        let owner = OwnerId::random();
        let token = match lock
            .try_acquire(Claim::new(&name, &owner, ttl()))
            .await
            .unwrap()
        {
            AcquireOutcome::Acquired(lease) => lease.token,
            other => panic!("{raw:?}: {other:?}"),
        };
        holders.push((name, lock, owner, token));
    }
    for (name, _, owner, token) in &holders {
        match any.inspect(name).await.unwrap() {
            LockState::Locked(hs) => assert_eq!(
                (&hs.first().owner, hs.first().token),
                (owner, *token),
                "{name:?}"
            ),
            other => panic!("{name:?}: {other:?}"),
        }
        let intruder = OwnerId::random();
        assert!(matches!(
            any.try_acquire(Claim::new(name, &intruder, ttl())).await.unwrap(),
            AcquireOutcome::Held(h) if h.owner == *owner
        ));
    }
    for (name, lock, owner, _) in &holders {
        assert_eq!(
            lock.release(name, owner).await.unwrap(),
            ReleaseOutcome::Released,
            "{name:?}"
        );
        assert_eq!(
            any.inspect(name).await.unwrap(),
            LockState::Open,
            "{name:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_only_data_in_lease_mode() {
    every_name_is_its_own_lock(&url()).await;
    let rows = psql("SELECT count(*) FROM public.lock_leases WHERE name LIKE '%DROP TABLE%'");
    assert_eq!(rows, "2", "the names are rows, the table is still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_only_data_in_session_mode() {
    every_name_is_its_own_lock(&format!("{}?mode=session", url())).await;
    assert_eq!(
        psql("SELECT count(*) FROM public.lock_sessions WHERE name = '\\'"),
        "1"
    );
}

/// The documented name → key mapping (64 bits of SHA-256) gives distinct keys over a large,
/// deliberately similar set of names, and depends on the table.
#[test]
fn session_keys_do_not_collide_on_many_names() {
    let mut names: Vec<String> = Vec::new();
    for i in 0..80_000u32 {
        names.push(format!("job-{i}"));
        names.push(format!("job/{i}"));
    }
    for i in 0..20_000u32 {
        names.push(format!("{i:08x}"));
        names.push(format!("tenant {} / queue {}", i % 97, i));
    }
    for a in ['a', 'A', 'é', '🔒', '/', '%', '\\', ' '] {
        for b in 0..2_000u32 {
            names.push(format!("{a}{b}{a}"));
        }
    }
    let mut seen: HashMap<i64, &str> = HashMap::with_capacity(names.len());
    for name in &names {
        if let Some(other) = seen.insert(advisory_key("public", "lock_sessions", name), name) {
            panic!("{name:?} and {other:?} share a key");
        }
    }
    assert!(seen.len() >= 200_000, "{} names", seen.len());
    assert_ne!(
        advisory_key("public", "lock_sessions", "job-1"),
        advisory_key("public", "other_table", "job-1")
    );
}

/// The SQL the crate documentation gives for a name's key computes the same key, and the lock
/// shows up in `pg_locks` under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_sql_finds_the_key() {
    let url = format!("{}?mode=session", url());
    let lock = SessionLock::connect(&url).await.unwrap();
    for raw in ["job-1", "🔒 é'\\"] {
        let name = LockName::new(raw).unwrap();
        let key = lock.advisory_key(&name);
        assert_eq!(key, advisory_key("public", "lock_sessions", raw));
        let quoted = raw.replace('\'', "''");
        let sql = format!(
            "SELECT ('x' || encode(substring(sha256(convert_to('public.lock_sessions', 'UTF8') \
             || '\\x00'::bytea || convert_to('{quoted}', 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint"
        );
        assert_eq!(psql(&sql), key.to_string(), "{raw:?}");
        let owner = OwnerId::random();
        assert!(matches!(
            lock.try_acquire(Claim::new(&name, &owner, ttl()))
                .await
                .unwrap(),
            AcquireOutcome::Acquired(_)
        ));
        let (hi, lo) = ((key >> 32) as u32, key as u32);
        let held = psql(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = {hi} \
             AND objid = {lo} AND objsubid = 1 AND granted"
        ));
        assert_eq!(held, "1", "{raw:?}");
        assert_eq!(
            lock.release(&name, &owner).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
}

/// Many handles using a new table (in a new schema) for the first time at the same moment all
/// succeed, and share one table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_users_create_the_table_once() {
    let suffix = OwnerId::random().as_str()[..8].to_owned();
    for url in [
        format!("{}?schema=fresh_{suffix}&table=locks", url()),
        format!("{}?table=fresh_{suffix}&mode=session", url()),
    ] {
        let connects: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { lock_postgres::connect(&url).await })
            })
            .collect();
        let mut locks = Vec::new();
        for connect in connects {
            locks.push(
                connect
                    .await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{url}: {e}")),
            );
        }
        let name = LockName::new("first").unwrap();
        let owner = OwnerId::random();
        assert!(matches!(
            locks[0]
                .try_acquire(Claim::new(&name, &owner, ttl()))
                .await
                .unwrap(),
            AcquireOutcome::Acquired(_)
        ));
        for lock in &locks[1..] {
            assert!(
                matches!(lock.inspect(&name).await.unwrap(), LockState::Locked(hs) if hs.first().owner == owner)
            );
        }
    }
}

/// A table of that name that is not a lock table is refused, and left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_table_is_refused() {
    psql("CREATE TABLE IF NOT EXISTS public.not_locks (id int)");
    let url = format!("{}?table=not_locks", url());
    match lock_postgres::connect(&url).await {
        Err(Error::Backend { message, .. }) => {
            assert!(
                message.contains("not a lock table") && message.contains("token"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(psql("SELECT count(*) FROM public.not_locks"), "0");
}

/// A lock table dropped under a running handle is created again by the next operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_comes_back() {
    let table = format!("dropped_{}", &OwnerId::random().as_str()[..8]);
    let lock = LeaseLock::connect(&format!("{}?table={table}", url()))
        .await
        .unwrap();
    let name = LockName::new("n").unwrap();
    let owner = OwnerId::random();
    lock.try_acquire(Claim::new(&name, &owner, ttl()))
        .await
        .unwrap();
    psql(&format!("DROP TABLE public.{table}"));
    assert!(matches!(
        lock.try_acquire(Claim::new(&name, &owner, ttl()))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert!(
        matches!(lock.inspect(&name).await.unwrap(), LockState::Locked(hs) if hs.first().owner == owner)
    );
}

/// The waiters' line table sits beside the lock table, unlogged; one missing (a table made by
/// an earlier version, or dropped under a running handle) is created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_line_table_is_unlogged_and_comes_back() {
    let table = format!("lined_{}", &OwnerId::random().as_str()[..8]);
    let url = format!("{}?table={table}", url());
    let persistence = |t: &str| {
        psql(&format!(
            "SELECT relpersistence FROM pg_class WHERE relname = '{t}'"
        ))
    };
    let lock = lock_postgres::connect(&url).await.unwrap();
    assert_eq!(persistence(&table), "p", "the lock table is logged");
    assert_eq!(
        persistence(&format!("{table}_line")),
        "u",
        "the line is not"
    );

    let (name, a, b) = (
        LockName::new("n").unwrap(),
        OwnerId::random(),
        OwnerId::random(),
    );
    let patience = std::time::Duration::from_secs(60);
    assert!(matches!(
        lock.try_acquire(Claim::new(&name, &a, ttl()))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    psql(&format!("DROP TABLE public.{table}_line"));
    assert!(matches!(
        lock.try_acquire_in_line(Claim::new(&name, &b, ttl()), patience).await.unwrap(),
        lock_core::raw::InLineOutcome::Held(h) if h.owner == a
    ));
    assert_eq!(
        psql(&format!("SELECT owner FROM public.{table}_line")),
        b.as_str()
    );

    psql(&format!("DROP TABLE public.{table}_line"));
    lock_postgres::connect(&url).await.unwrap();
    assert_eq!(
        persistence(&format!("{table}_line")),
        "u",
        "created at connect"
    );
}

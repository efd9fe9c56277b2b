//! Semaphores and shared leases in lease mode, beyond the conformance suite: racing claims on
//! a semaphore admit exactly N, a claim on a row that other kinds left behind, and a rough timing of the exclusive cycle (printed, never
//! asserted).

use std::sync::Arc;
use std::time::Instant;

use conformance_tests::kit::PostgresServer;
use lock_core::{AcquireOutcome, Claim, Kind, Lock, LockName, LockState, OwnerId, Permits, Ttl};
use lock_postgres::LeaseLock;

static SERVER: conformance_tests::kit::Shared<PostgresServer> =
    conformance_tests::kit::Shared::new(PostgresServer::start);

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

/// 16 handles claim a permit of a semaphore of 3 at the same instant: exactly 3 win, each with
/// its own token, and inspect lists exactly those 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_claims_on_a_semaphore_of_3_admit_exactly_3() {
    let url = SERVER.with(PostgresServer::url);
    let three = Kind::permit(Permits::new(3).unwrap());
    for round in 0..5 {
        let name = LockName::new(format!("race-{round}")).unwrap();
        let mut handles = Vec::new();
        for _ in 0..16 {
            handles.push(Arc::new(LeaseLock::connect(&url).await.unwrap()));
        }
        // Warm each handle's pool so that the claims below leave at once.
        for h in &handles {
            h.inspect(&name).await.unwrap();
        }
        if round % 2 == 1 {
            // A name used before: its row is there, open, and every claim races on it through
            // the small statement for a name with room (`take_room`); on a new name the first
            // claims race to insert the row.
            let (owner, lock) = (OwnerId::random(), &handles[0]);
            let claim = Claim::new(&name, &owner, ttl()).with_kind(three);
            assert!(matches!(
                lock.try_acquire(claim).await.unwrap(),
                AcquireOutcome::Acquired(_)
            ));
            lock.release(&name, &owner).await.unwrap();
        }
        let start = Arc::new(tokio::sync::Barrier::new(handles.len()));
        let tasks: Vec<_> = handles
            .into_iter()
            .map(|lock| {
                let (name, start) = (name.clone(), start.clone());
                tokio::spawn(async move {
                    let owner = OwnerId::random();
                    start.wait().await;
                    let claim = Claim::new(&name, &owner, ttl()).with_kind(three);
                    lock.try_acquire(claim).await.unwrap()
                })
            })
            .collect();
        let mut tokens = Vec::new();
        let mut refused = 0;
        for task in tasks {
            match task.await.unwrap() {
                AcquireOutcome::Acquired(lease) => {
                    assert_eq!(lease.kind, three);
                    tokens.push(lease.token);
                }
                AcquireOutcome::Held(holder) => {
                    assert_eq!(holder.kind, three);
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((tokens.len(), refused), (3, 13), "round {round}");
        tokens.sort();
        tokens.dedup();
        assert_eq!(tokens.len(), 3, "every permit has its own token");
        let lock = LeaseLock::connect(&url).await.unwrap();
        match lock.inspect(&name).await.unwrap() {
            LockState::Locked(holders) => {
                assert_eq!(holders.permits(), Some((3, 0)));
                let mut seen: Vec<_> = holders.as_slice().iter().map(|h| h.token).collect();
                seen.sort();
                assert_eq!(seen, tokens);
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

/// A claim where there is plainly room takes a small statement of its own; the rows it writes
/// over are the ones every kind leaves behind: a lapsed exclusive lease, lapsed permits of
/// another N, lapsed and live permits of the same N. Each grant has the next token; the
/// owner's own live permit is taken again with its token; another N beside a live permit, or
/// a fourth permit of 3, is refused with the row unchanged.
#[tokio::test]
async fn a_claim_with_room_writes_over_what_every_kind_leaves() {
    let url = SERVER.with(PostgresServer::url);
    let lock = LeaseLock::connect(&url).await.unwrap();
    let name = LockName::new("left-behind").unwrap();
    let short = Ttl::from_millis(50).unwrap();
    let (three, five) = (
        Kind::permit(Permits::new(3).unwrap()),
        Kind::permit(Permits::new(5).unwrap()),
    );
    let grant = |owner: OwnerId, ttl: Ttl, kind: Kind| {
        let (lock, name) = (&lock, &name);
        async move {
            match lock
                .try_acquire(Claim::new(name, &owner, ttl).with_kind(kind))
                .await
                .unwrap()
            {
                AcquireOutcome::Acquired(lease) => lease.token,
                other => panic!("{kind}: {other:?}"),
            }
        }
    };
    let wait_out = || tokio::time::sleep(std::time::Duration::from_millis(80));
    let t1 = grant(OwnerId::random(), short, Kind::Exclusive).await;
    wait_out().await;
    let t2 = grant(OwnerId::random(), short, five).await;
    assert!(t2 > t1, "over a lapsed exclusive lease");
    wait_out().await;
    let t3 = grant(OwnerId::random(), short, three).await;
    assert!(t3 > t2, "over lapsed permits of another N");
    let mine = OwnerId::random();
    let t4 = grant(mine.clone(), ttl(), three).await;
    assert!(t4 > t3, "beside a live permit");
    assert_eq!(
        grant(mine.clone(), ttl(), three).await,
        t4,
        "its own, again"
    );
    wait_out().await; // t3 lapses
    let t5 = grant(OwnerId::random(), ttl(), three).await;
    let t6 = grant(OwnerId::random(), ttl(), three).await;
    assert!(t6 > t5 && t5 > t4, "over a lapsed permit, beside live ones");
    let before = lock.inspect(&name).await.unwrap();
    let late = OwnerId::random();
    let fourth = Claim::new(&name, &late, ttl()).with_kind(three);
    assert!(matches!(
        lock.try_acquire(fourth).await.unwrap(),
        AcquireOutcome::Held(_)
    ));
    let other_n = OwnerId::random();
    let err = lock
        .try_acquire(Claim::new(&name, &other_n, ttl()).with_kind(five))
        .await
        .unwrap_err();
    assert!(
        matches!(err, lock_core::Error::InvalidInput(_)),
        "another N: {err}"
    );
    let after = lock.inspect(&name).await.unwrap();
    let tokens = |s: &LockState| match s {
        LockState::Locked(h) => h.as_slice().iter().map(|h| h.token).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(tokens(&after), tokens(&before));
    assert_eq!(tokens(&after).len(), 3);
}

/// Times try acquire + release of an exclusive lock on one handle, and of a permit; prints
/// the mean cycle. Not asserted: a rough figure for comparing changes.
#[tokio::test]
async fn exclusive_cycle_timing() {
    let url = SERVER.with(PostgresServer::url);
    let lock = LeaseLock::connect(&url).await.unwrap();
    let name = LockName::new("timing").unwrap();
    let owner = OwnerId::random();
    let kinds = [
        ("exclusive", Kind::Exclusive),
        ("permit of 3", Kind::permit(Permits::new(3).unwrap())),
    ];
    for (label, kind) in kinds {
        if !lock.capabilities().permits && kind != Kind::Exclusive {
            continue;
        }
        let cycle = |n: usize| {
            let (lock, name, owner) = (&lock, &name, &owner);
            async move {
                let start = Instant::now();
                for _ in 0..n {
                    let claim = Claim::new(name, owner, ttl()).with_kind(kind);
                    let got = lock.try_acquire(claim).await.unwrap();
                    assert!(matches!(got, AcquireOutcome::Acquired(_)), "{got:?}");
                    lock.release(name, owner).await.unwrap();
                }
                start.elapsed()
            }
        };
        cycle(200).await; // warm up
        let n = 2_000;
        let took = cycle(n).await;
        println!(
            "{label}: try_acquire + release, {n} cycles: {:?} per cycle",
            took / n as u32
        );
    }
}

/// Tables made by an earlier version (no `capacity`, `holders` nor line `weight`): connecting
/// adds the columns, the rows in them keep working, and every kind works on them.
#[tokio::test]
async fn tables_of_an_earlier_version_are_migrated_at_connect() {
    let url = SERVER.with(PostgresServer::url);
    let old = OwnerId::random();
    SERVER.with(|server| {
        server.psql(&format!(
            "CREATE TABLE public.old_locks (name text COLLATE \"C\" PRIMARY KEY, owner text, \
               token bigint NOT NULL CHECK (token > 0), expires_at timestamptz); \
             CREATE UNLOGGED TABLE public.old_locks_line (name text COLLATE \"C\" NOT NULL, \
               owner text COLLATE \"C\" NOT NULL, joined timestamptz NOT NULL, \
               kept_until timestamptz NOT NULL, PRIMARY KEY (name, owner)); \
             INSERT INTO public.old_locks VALUES ('held', '{}', 7, now() + interval '1 minute')",
            old.as_str()
        ))
    });
    let lock = LeaseLock::connect(&format!("{url}?table=old_locks"))
        .await
        .unwrap();
    let name = LockName::new("held").unwrap();
    let reader = OwnerId::random();
    let claim = Claim::new(&name, &reader, ttl()).with_kind(Kind::Shared);
    match lock.try_acquire(claim).await.unwrap() {
        AcquireOutcome::Held(h) => assert_eq!((h.owner, h.token.get()), (old.clone(), 7)),
        other => panic!("{other:?}"),
    }
    lock.release(&name, &old).await.unwrap();
    match lock.try_acquire(claim).await.unwrap() {
        AcquireOutcome::Acquired(lease) => assert_eq!(lease.token.get(), 8),
        other => panic!("{other:?}"),
    }
}

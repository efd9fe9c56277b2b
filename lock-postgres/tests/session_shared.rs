//! Session mode's shared holds (readers, `pg_try_advisory_lock_shared`) beyond the conformance
//! suite: a reader whose session ends is gone at once (its row in `holders` stays until the
//! next grant but is not shown), `force_release` ends every reader, and an owner reading
//! through one handle cannot also read, or write, through another.

use std::time::{Duration, Instant};

use conformance_tests::kit::PostgresServer;
use lock_core::{
    AcquireOutcome, Claim, Error, Holders, InvalidInput, Kind, Lease, Lock, LockName, LockState,
    OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};
use lock_postgres::SessionLock;

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

fn name(label: &str) -> LockName {
    LockName::new(format!("{}-{label}", &OwnerId::random().as_str()[..8])).unwrap()
}

async fn handle(server: &PostgresServer) -> SessionLock {
    SessionLock::connect(&format!("{}?mode=session", server.url()))
        .await
        .unwrap()
}

async fn claim(lock: &SessionLock, name: &LockName, owner: &OwnerId, kind: Kind) -> AcquireOutcome {
    lock.try_acquire(Claim::new(name, owner, ttl()).with_kind(kind))
        .await
        .unwrap()
}

async fn read(lock: &SessionLock, name: &LockName, owner: &OwnerId) -> Lease {
    match claim(lock, name, owner, Kind::Shared).await {
        AcquireOutcome::Acquired(lease) => {
            assert_eq!(lease.kind, Kind::Shared);
            lease
        }
        other => panic!("expected a shared grant, got {other:?}"),
    }
}

fn holders(state: LockState) -> Holders {
    match state {
        LockState::Locked(holders) => holders,
        other => panic!("expected the name held, got {other:?}"),
    }
}

/// `(owner, token)` of every holder, by token, all of them readers.
fn readers(state: LockState) -> Vec<(OwnerId, u64)> {
    let holders = holders(state);
    assert_eq!(holders.kind(), Kind::Shared);
    holders
        .as_slice()
        .iter()
        .map(|h| {
            assert_eq!((h.kind, h.expires_in), (Kind::Shared, None));
            (h.owner.clone(), h.token.get())
        })
        .collect()
}

/// The backend pid the table records for `owner`'s shared hold of `name`.
fn reader_pid(server: &PostgresServer, name: &LockName, owner: &OwnerId) -> i32 {
    server
        .psql(&format!(
            "SELECT e->>'p' FROM lock_sessions, jsonb_array_elements(holders) AS e \
             WHERE name = '{}' AND e->>'o' = '{}'",
            name.as_str(),
            owner.as_str()
        ))
        .parse()
        .expect("a pid recorded for the reader")
}

/// The owners the table's `holders` column lists for `name`, live or not.
fn recorded(server: &PostgresServer, name: &LockName) -> Vec<String> {
    let out = server.psql(&format!(
        "SELECT e->>'o' FROM lock_sessions, jsonb_array_elements(holders) AS e \
         WHERE name = '{}' ORDER BY (e->>'t')::bigint",
        name.as_str()
    ));
    out.lines().map(str::to_owned).collect()
}

fn terminate(server: &PostgresServer, pid: i32) {
    assert_eq!(
        server.psql(&format!("SELECT pg_terminate_backend({pid})")),
        "t"
    );
}

/// Waits until `lock` shows `n` holders of `name` (0: open).
async fn until_holders(lock: &SessionLock, name: &LockName, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = match lock.inspect(name).await.unwrap() {
            LockState::Locked(holders) => holders.len(),
            _ => 0,
        };
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "{now} holders, waited for {n}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_whose_session_ends_is_gone_and_a_writer_gets_in_after_the_others() {
    let server = PostgresServer::start();
    let (a, b, w) = (
        handle(&server).await,
        handle(&server).await,
        handle(&server).await,
    );
    let name = name("killed");
    let (r1, r2, writer) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
    let one = read(&a, &name, &r1).await;
    let two = read(&b, &name, &r2).await;
    assert!(two.token > one.token);
    assert_eq!(
        readers(w.inspect(&name).await.unwrap()),
        vec![(r1.clone(), one.token.get()), (r2.clone(), two.token.get())]
    );

    // The second reader's session is killed on the server.
    terminate(&server, reader_pid(&server, &name, &r2));
    until_holders(&w, &name, 1).await;
    assert_eq!(
        readers(w.inspect(&name).await.unwrap()),
        vec![(r1.clone(), one.token.get())]
    );
    assert_eq!(
        b.renew(&name, &r2, ttl()).await.unwrap(),
        RenewOutcome::Lost
    );
    assert!(matches!(
        claim(&w, &name, &writer, Kind::Exclusive).await,
        AcquireOutcome::Held(h) if h.owner == r1 && h.kind == Kind::Shared
    ));

    // The first goes with its handle.
    drop(a);
    until_holders(&w, &name, 0).await;
    let AcquireOutcome::Acquired(lease) = claim(&w, &name, &writer, Kind::Exclusive).await else {
        panic!("no reader is left");
    };
    assert_eq!(lease.kind, Kind::Exclusive);
    assert!(lease.token > two.token, "{lease:?} after {two:?}");
    assert!(
        recorded(&server, &name).is_empty(),
        "a writer's grant drops the readers' entries"
    );
    assert_eq!(
        b.release(&name, &r2).await.unwrap(),
        ReleaseOutcome::NotOwner
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readers_stale_row_is_not_shown_and_goes_at_the_next_grant() {
    let server = PostgresServer::start();
    let (a, b) = (handle(&server).await, handle(&server).await);
    let name = name("stale");
    let (r1, r2, r3) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
    let one = read(&a, &name, &r1).await;
    terminate(&server, reader_pid(&server, &name, &r1));
    until_holders(&b, &name, 0).await;
    assert_eq!(
        recorded(&server, &name),
        vec![r1.as_str().to_owned()],
        "the row stays until the next grant"
    );
    assert_eq!(b.inspect(&name).await.unwrap(), LockState::Open);

    let two = read(&b, &name, &r2).await;
    assert!(two.token > one.token);
    assert_eq!(recorded(&server, &name), vec![r2.as_str().to_owned()]);
    assert_eq!(
        readers(a.inspect(&name).await.unwrap()),
        vec![(r2.clone(), two.token.get())]
    );

    // A reader released: its connection goes back to the pool, and the next reader on this
    // handle likely takes the same one (the same pid): the old entry of that pid must not
    // count for the new hold.
    assert_eq!(
        b.release(&name, &r2).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(b.inspect(&name).await.unwrap(), LockState::Open);
    let three = read(&b, &name, &r3).await;
    assert!(three.token > two.token);
    assert_eq!(
        readers(a.inspect(&name).await.unwrap()),
        vec![(r3.clone(), three.token.get())]
    );
    assert_eq!(recorded(&server, &name), vec![r3.as_str().to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_on_one_handle_release_apart_and_force_release_ends_them_all() {
    let server = PostgresServer::start();
    let (a, b, other) = (
        handle(&server).await,
        handle(&server).await,
        handle(&server).await,
    );
    let name = name("force");
    let owners: Vec<OwnerId> = (0..4).map(|_| OwnerId::random()).collect();
    let mut tokens = Vec::new();
    for (i, owner) in owners.iter().enumerate() {
        let lock = if i % 2 == 0 { &a } else { &b };
        tokens.push(read(lock, &name, owner).await.token);
    }
    assert!(tokens.windows(2).all(|t| t[0] < t[1]), "{tokens:?}");
    assert_eq!(readers(other.inspect(&name).await.unwrap()).len(), 4);

    // Asking again: the same token; releasing one (on a handle with two) leaves the rest.
    assert_eq!(read(&a, &name, &owners[0]).await.token, tokens[0]);
    assert_eq!(
        a.release(&name, &owners[2]).await.unwrap(),
        ReleaseOutcome::Released
    );
    let left: Vec<OwnerId> = readers(other.inspect(&name).await.unwrap())
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(
        left,
        vec![owners[0].clone(), owners[1].clone(), owners[3].clone()]
    );
    assert_eq!(
        a.renew(&name, &owners[0], ttl()).await.unwrap(),
        RenewOutcome::Renewed(Lease {
            name: name.clone(),
            owner: owners[0].clone(),
            token: tokens[0],
            ttl: ttl(),
            kind: Kind::Shared,
        })
    );

    assert_eq!(
        other.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(other.inspect(&name).await.unwrap(), LockState::Open);
    for (i, owner) in owners.iter().enumerate() {
        let lock = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            lock.renew(&name, owner, ttl()).await.unwrap(),
            RenewOutcome::Lost
        );
    }
    let AcquireOutcome::Acquired(lease) =
        claim(&other, &name, &OwnerId::random(), Kind::Exclusive).await
    else {
        panic!("every reader was ended");
    };
    assert!(lease.token > tokens[3]);
    assert_eq!(
        other.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        other.force_release(&name).await.unwrap(),
        ReleaseOutcome::NotLocked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_reading_through_one_handle_cannot_read_or_write_through_another() {
    let server = PostgresServer::start();
    let (a, b) = (handle(&server).await, handle(&server).await);
    let name = name("elsewhere");
    let owner = OwnerId::random();
    let lease = read(&a, &name, &owner).await;

    // The same kind through another handle: refused, its hold shown.
    match claim(&b, &name, &owner, Kind::Shared).await {
        AcquireOutcome::Held(h) => {
            assert_eq!(
                (h.owner, h.token, h.kind),
                (owner.clone(), lease.token, Kind::Shared)
            );
        }
        other => panic!("expected held, got {other:?}"),
    }
    // Another kind, through either handle: a mismatch.
    for lock in [&a, &b] {
        match lock
            .try_acquire(Claim::new(&name, &owner, ttl()).with_kind(Kind::Exclusive))
            .await
        {
            Err(Error::InvalidInput(InvalidInput::KindMismatch { held_as, asked, .. })) => {
                assert_eq!((held_as, asked), (Kind::Shared, Kind::Exclusive));
            }
            other => panic!("expected a kind mismatch, got {other:?}"),
        }
    }
    assert_eq!(
        readers(b.inspect(&name).await.unwrap()),
        vec![(owner.clone(), lease.token.get())],
        "nothing changed"
    );
    // A writer asked to read: a mismatch too.
    let (writer, name) = (OwnerId::random(), self::name("writer"));
    let AcquireOutcome::Acquired(lease) = claim(&a, &name, &writer, Kind::Exclusive).await else {
        panic!("a free name");
    };
    match a
        .try_acquire(Claim::new(&name, &writer, ttl()).with_kind(Kind::Shared))
        .await
    {
        Err(Error::InvalidInput(InvalidInput::KindMismatch { held_as, .. })) => {
            assert_eq!(held_as, Kind::Exclusive);
        }
        other => panic!("expected a kind mismatch, got {other:?}"),
    }
    let holder = holders(b.inspect(&name).await.unwrap()).first().clone();
    assert_eq!((holder.owner, holder.token), (writer, lease.token));
}

//! Semaphores and shared leases on files: many handles racing for a few permits, a record that
//! grows past one block and is cut back, old records read as before, one tie per lease.

use std::fs;
use std::sync::Arc;

use lock_core::{
    AcquireOutcome, Claim, Kind, Lock, LockName, LockState, OwnerId, Permits, ReleaseOutcome, Ttl,
};
use lock_file::FileLock;

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

fn sem(n: u32) -> Kind {
    Kind::permit(Permits::new(n).unwrap())
}

fn held_by(state: LockState) -> usize {
    match state {
        LockState::Locked(h) => h.len(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_handles_race_for_three_permits_and_exactly_three_win() {
    for round in 0..5 {
        let tmp = tempfile::tempdir().unwrap();
        let name = LockName::new(format!("pool-{round}")).unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                // Each its own handle: its own turnstiles, so they meet at the flock.
                let lock = FileLock::new(tmp.path()).unwrap();
                let (name, start) = (name.clone(), start.clone());
                tokio::spawn(async move {
                    let owner = OwnerId::random();
                    start.wait().await;
                    let claim = Claim::new(&name, &owner, ttl()).with_kind(sem(3));
                    lock.try_acquire(claim).await.unwrap()
                })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            if let AcquireOutcome::Acquired(lease) = task.await.unwrap() {
                tokens.push(lease.token);
            }
        }
        assert_eq!(tokens.len(), 3, "round {round}: {tokens:?}");
        tokens.sort();
        tokens.dedup();
        assert_eq!(tokens.len(), 3, "every winner has its own token");
        let lock = FileLock::new(tmp.path()).unwrap();
        assert_eq!(held_by(lock.inspect(&name).await.unwrap()), 3);
    }
}

#[tokio::test]
async fn a_crowd_of_readers_grows_the_file_in_blocks_and_it_is_cut_back_once_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let name = LockName::new("crowd").unwrap();
    let path = lock.path_of(&name);
    let owners: Vec<OwnerId> = (0..100)
        .map(|i| OwnerId::new(format!("reader-{i:0>100}")).unwrap())
        .collect();
    let mut first = None;
    for owner in &owners {
        let claim = Claim::new(&name, owner, ttl()).with_kind(Kind::Shared);
        let AcquireOutcome::Acquired(lease) = lock.try_acquire(claim).await.unwrap() else {
            panic!("readers share");
        };
        first.get_or_insert(lease.token);
    }
    let len = fs::metadata(&path).unwrap().len();
    assert!(len > 4096, "{len} bytes: past the first read");
    assert_eq!(len % 256, 0, "whole blocks");
    assert_eq!(held_by(lock.inspect(&name).await.unwrap()), 100);
    for owner in &owners[..99] {
        assert_eq!(
            lock.release(&name, owner).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        256,
        "one lease: one block"
    );
    assert_eq!(held_by(lock.inspect(&name).await.unwrap()), 1);
    assert_eq!(
        lock.release(&name, &owners[99]).await.unwrap(),
        ReleaseOutcome::Released
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(r#"{"v":1,"owner":null,"token":"#),
        "{text}"
    );
    // The last token stays above every token handed out.
    let writer = OwnerId::random();
    let AcquireOutcome::Acquired(lease) = lock
        .try_acquire(Claim::new(&name, &writer, ttl()))
        .await
        .unwrap()
    else {
        panic!("open");
    };
    assert_eq!(lease.token.get(), first.unwrap().get() + 100);
}

#[tokio::test]
async fn a_record_of_an_older_build_reads_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let name = LockName::new("old").unwrap();
    let far = u64::MAX / 2;
    fs::write(
        lock.path_of(&name),
        format!(r#"{{"v":1,"owner":"old-owner","token":41,"expires_ms":{far}}}"#),
    )
    .unwrap();
    let LockState::Locked(h) = lock.inspect(&name).await.unwrap() else {
        panic!("held");
    };
    assert_eq!(
        (h.first().owner.as_str(), h.first().token.get()),
        ("old-owner", 41)
    );
    assert_eq!(h.kind(), Kind::Exclusive);
    let reader = OwnerId::random();
    let claim = Claim::new(&name, &reader, ttl()).with_kind(Kind::Shared);
    assert!(matches!(
        lock.try_acquire(claim).await.unwrap(),
        AcquireOutcome::Held(_)
    ));
    assert_eq!(
        lock.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    let AcquireOutcome::Acquired(lease) = lock.try_acquire(claim).await.unwrap() else {
        panic!("open");
    };
    assert_eq!(lease.token.get(), 42);
}

#[tokio::test]
async fn each_permit_has_its_own_tie() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let name = LockName::new("tied").unwrap();
    let (a, b, c) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
    for owner in [&a, &b] {
        let claim = Claim::new(&name, owner, ttl()).with_kind(sem(2));
        assert!(matches!(
            lock.try_acquire(claim).await.unwrap(),
            AcquireOutcome::Acquired(_)
        ));
    }
    let tie_a = lock.tie(&name, &a).await.unwrap().expect("a's tie");
    let tie_b = lock.tie(&name, &b).await.unwrap().expect("b's tie");
    let claim_c = Claim::new(&name, &c, ttl()).with_kind(sem(2));
    assert!(matches!(
        lock.try_acquire(claim_c).await.unwrap(),
        AcquireOutcome::Held(_)
    ));
    drop(tie_a);
    let LockState::Locked(h) = lock.inspect(&name).await.unwrap() else {
        panic!("b holds");
    };
    assert_eq!((h.len(), &h.first().owner), (1, &b));
    assert!(matches!(
        lock.try_acquire(claim_c).await.unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert_eq!(held_by(lock.inspect(&name).await.unwrap()), 2);
    drop(tie_b);
    let LockState::Locked(h) = lock.inspect(&name).await.unwrap() else {
        panic!("c holds");
    };
    assert_eq!((h.len(), &h.first().owner), (1, &c));
}

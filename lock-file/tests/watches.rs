//! What the change watcher watches: the lock files waited on, not their directory, so work on
//! other names (and on line files) does not wake it, nor do writes that leave the name held;
//! and it stops watching the files nobody waits on any more. Read from `/proc`: the watcher
//! thread's context switches and the inotify instance's watch list. One test per binary, so
//! that no other test's watcher is counted.

use std::time::{Duration, Instant};

use lock_core::{Claim, Lock, LockName, OwnerId, Ttl};
use lock_file::FileLock;

/// The watcher thread's voluntary context switches: one each time it wakes from `poll`.
fn watcher_wake_ups() -> u64 {
    let started = Instant::now();
    loop {
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() == "lock-file-watch" {
                let status = std::fs::read_to_string(dir.join("status")).unwrap();
                let line = status
                    .lines()
                    .find(|l| l.starts_with("voluntary_ctxt_switches:"))
                    .expect("context switches in status");
                return line.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
        // A new thread names itself once it runs.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no watcher thread"
        );
        std::thread::yield_now();
    }
}

/// The watches of this process's inotify instances, from `/proc/self/fdinfo`.
fn inotify_watches() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| {
            let fd = fd.ok()?;
            let target = std::fs::read_link(fd.path()).ok()?;
            (target.to_string_lossy() == "anon_inode:inotify").then(|| {
                let info = format!("/proc/self/fdinfo/{}", fd.file_name().to_string_lossy());
                std::fs::read_to_string(info)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count()
            })
        })
        .sum()
}

#[tokio::test]
async fn only_the_lock_files_waited_on_are_watched() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let ttl = Ttl::from_millis(60_000).unwrap();
    let (holder, other) = (OwnerId::random(), OwnerId::random());
    let waited = LockName::new("waited").unwrap();
    lock.try_acquire(Claim::new(&waited, &holder, ttl))
        .await
        .unwrap();
    let change = lock
        .watch(&waited)
        .await
        .unwrap()
        .expect("inotify on Linux");

    // Busy work on another name in the same directory, its line file included.
    let busy = LockName::new("busy").unwrap();
    let before = watcher_wake_ups();
    for _ in 0..50 {
        lock.try_acquire(Claim::new(&busy, &holder, ttl))
            .await
            .unwrap();
        lock.try_acquire_in_line(Claim::new(&busy, &other, ttl), Duration::from_secs(1))
            .await
            .unwrap();
        lock.leave_line(&busy, &other).await.unwrap();
        lock.release(&busy, &holder).await.unwrap();
    }
    let woke = watcher_wake_ups() - before;
    assert!(woke <= 2, "the watcher woke {woke} times for another name");

    // Renewals and grants of the name waited on leave it held: they wake no process either.
    let before = watcher_wake_ups();
    for _ in 0..50 {
        lock.renew(&waited, &holder, ttl).await.unwrap();
        lock.try_acquire(Claim::new(&waited, &holder, ttl))
            .await
            .unwrap();
    }
    let woke = watcher_wake_ups() - before;
    assert!(woke <= 2, "the watcher woke {woke} times for a held name");
    lock.release(&waited, &holder).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), change)
        .await
        .expect("a release of the name waited on wakes its watcher");

    // Waits on many names, one after another: the watches of names nobody waits on go.
    for i in 0..300 {
        let name = LockName::new(format!("n{i}")).unwrap();
        lock.try_acquire(Claim::new(&name, &holder, ttl))
            .await
            .unwrap();
        drop(lock.watch(&name).await.unwrap().expect("watched"));
    }
    let watches = inotify_watches();
    assert!(
        (1..=100).contains(&watches),
        "{watches} watches left for 300 names waited on once"
    );
    // A name still waited on keeps its watch through the clean-ups.
    let kept = LockName::new("n0").unwrap();
    let change = lock.watch(&kept).await.unwrap().expect("watched");
    for i in 300..600 {
        let name = LockName::new(format!("n{i}")).unwrap();
        lock.try_acquire(Claim::new(&name, &holder, ttl))
            .await
            .unwrap();
        drop(lock.watch(&name).await.unwrap().expect("watched"));
    }
    lock.release(&kept, &holder).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), change)
        .await
        .expect("the watch of a name still waited on survives the clean-ups");
}

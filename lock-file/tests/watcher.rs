//! The change watcher's own life: one thread per watching handle, gone with the handle, and a
//! lock directory removed and made again is watched again. One test per binary, so that no
//! other test's watcher is counted.

use std::time::{Duration, Instant};

use lock_core::{Claim, Lock, LockName, OwnerId, Ttl};
use lock_file::FileLock;

/// The threads named `lock-file-watch`, once every thread has taken its name. A new thread
/// names itself when it starts running: until then it shows its parent's name (this test
/// thread's: `watch` starts the watcher on the calling thread), and counting then would miss
/// it (CI did, under load).
fn watcher_threads() -> usize {
    let comm = |dir: &std::path::Path| std::fs::read_to_string(dir.join("comm")).ok();
    let me = comm(std::path::Path::new("/proc/thread-self")).expect("own thread name");
    let started = Instant::now();
    loop {
        let names: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| comm(&t.ok()?.path()))
            .collect();
        // Only this thread still carries its name: every thread it started has named itself.
        if names.iter().filter(|n| **n == me).count() <= 1 {
            return names
                .iter()
                .filter(|n| n.trim() == "lock-file-watch")
                .count();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a new thread never named itself: {names:?}"
        );
        std::thread::yield_now();
    }
}

#[tokio::test]
async fn the_watcher_thread_lives_as_long_as_its_handle_and_outlives_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("locks");
    let name = LockName::new("job").unwrap();
    let ttl = Ttl::from_millis(60_000).unwrap();
    assert_eq!(watcher_threads(), 0);
    let lock = FileLock::new(&dir).unwrap();
    let holder = OwnerId::random();
    lock.try_acquire(Claim::new(&name, &holder, ttl))
        .await
        .unwrap();
    let change = lock.watch(&name).await.unwrap().expect("inotify on Linux");
    assert_eq!(watcher_threads(), 1, "one thread once someone waits");
    let _second = lock.watch(&name).await.unwrap().expect("watched");
    assert_eq!(watcher_threads(), 1, "still one");
    lock.release(&name, &holder).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), change)
        .await
        .expect("a release wakes the watcher");

    // The directory goes and comes back: a watch on the new one still sees a release.
    std::fs::remove_dir_all(&dir).unwrap();
    let gone = Instant::now();
    let again = FileLock::new(&dir).unwrap();
    let mut woken = false;
    while !woken && gone.elapsed() < Duration::from_secs(5) {
        lock.try_acquire(Claim::new(&name, &holder, ttl))
            .await
            .unwrap();
        let change = lock.watch(&name).await.unwrap().expect("watched again");
        again.release(&name, &holder).await.unwrap();
        woken = tokio::time::timeout(Duration::from_millis(500), change)
            .await
            .is_ok();
    }
    assert!(woken, "the new directory is watched");
    drop((lock, again));
    let dropped = Instant::now();
    while watcher_threads() > 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "the thread ends with its handle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

//! What only the file backend has to prove: file modes, foreign content, planted symlinks and
//! FIFOs, a read-only directory, and that no name reaches outside the directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use lock_core::raw::InLineOutcome;
use lock_core::{
    AcquireOutcome, Claim, Error, Lock, LockName, LockState, Operation, OwnerId, ReleaseOutcome,
    Ttl,
};
use lock_file::FileLock;

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

fn name(s: &str) -> LockName {
    LockName::new(s).unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn files_are_0600_in_a_0700_directory_and_stay_inside_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("locks");
    let lock = FileLock::new(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    for n in ["../../etc/passwd", "..", "/abs", "a/b"] {
        let got = lock
            .try_acquire(Claim::new(&name(n), &OwnerId::random(), ttl()))
            .await
            .unwrap();
        assert!(matches!(got, AcquireOutcome::Acquired(_)));
        let path = lock.path_of(&name(n));
        assert_eq!(path.parent().unwrap(), dir, "{n:?} stays in the directory");
        assert_eq!(mode(&path), 0o600);
    }
    let outside: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec!["locks"],
        "nothing was written beside the directory"
    );
}

#[tokio::test]
async fn garbled_content_is_an_error_naming_the_file_until_force_release_repairs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let n = name("job");
    let path = lock.path_of(&n);
    fs::write(&path, "someone else's data\n").unwrap();
    let owner = OwnerId::random();
    for err in [
        lock.try_acquire(Claim::new(&n, &owner, ttl()))
            .await
            .unwrap_err(),
        lock.inspect(&n).await.unwrap_err(),
        lock.release(&n, &owner).await.unwrap_err(),
    ] {
        assert!(matches!(&err, Error::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
    }
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "someone else's data\n",
        "left as it was"
    );
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::Released
    );
    let AcquireOutcome::Acquired(lease) = lock
        .try_acquire(Claim::new(&n, &owner, ttl()))
        .await
        .unwrap()
    else {
        panic!("the repaired lock is open")
    };
    assert!(
        lease.token.get() > 1_600_000_000_000_000,
        "tokens continue from the clock"
    );
}

#[tokio::test]
async fn a_symlink_planted_at_the_path_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path().join("locks")).unwrap();
    let target = tmp.path().join("precious");
    fs::write(&target, "keep me").unwrap();
    let n = name("job");
    symlink(&target, lock.path_of(&n)).unwrap();
    let err = lock
        .try_acquire(Claim::new(&n, &OwnerId::random(), ttl()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { detail, .. } if detail.contains("symbolic link")),
        "{err:?}"
    );
    assert!(lock.force_release(&n).await.is_err());
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
}

/// The waiters' line lives in `<name>.line` beside the lock file, 0600, blank when empty;
/// a symlink planted there is never followed, and a single try does not look at it.
#[tokio::test]
async fn the_line_file_is_private_and_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path().join("locks")).unwrap();
    let (n, a, b) = (name("job"), OwnerId::random(), OwnerId::random());
    let line = lock.path_of(&n).with_extension("line");
    let patience = std::time::Duration::from_secs(60);
    assert!(matches!(
        lock.try_acquire(Claim::new(&n, &a, ttl())).await.unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert!(matches!(
        lock.try_acquire_in_line(Claim::new(&n, &b, ttl()), patience).await.unwrap(),
        InLineOutcome::Held(h) if h.owner == a
    ));
    assert_eq!(mode(&line), 0o600);
    assert!(
        fs::read_to_string(&line)
            .unwrap()
            .ends_with(&format!(" {b}\n"))
    );
    lock.leave_line(&n, &b).await.unwrap();
    assert!(
        fs::read_to_string(&line).unwrap().trim().is_empty(),
        "an empty line is blank"
    );

    let target = tmp.path().join("precious");
    fs::write(&target, "keep me").unwrap();
    fs::remove_file(&line).unwrap();
    symlink(&target, &line).unwrap();
    let err = lock
        .try_acquire_in_line(Claim::new(&n, &b, ttl()), patience)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { location, detail, .. }
            if detail.contains("symbolic link") && location.ends_with(".line")),
        "{err:?}"
    );
    assert_eq!(
        lock.release(&n, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert!(matches!(
        lock.try_acquire(Claim::new(&n, &b, ttl())).await.unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep me");
}

#[tokio::test]
async fn a_fifo_planted_at_the_path_does_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let n = name("job");
    nix::unistd::mkfifo(&lock.path_of(&n), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        lock.try_acquire(Claim::new(&n, &OwnerId::random(), ttl())),
    )
    .await
    .expect("no hang");
    assert!(matches!(got, Err(Error::Corrupt { detail, .. }) if detail.contains("regular")));
}

/// A directory at the path: an operation that only reads opens it, and the read tells.
#[tokio::test]
async fn a_directory_planted_at_the_path_is_refused_as_not_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let n = name("job");
    fs::create_dir(lock.path_of(&n)).unwrap();
    let got = lock.inspect(&n).await;
    assert!(
        matches!(&got, Err(Error::Corrupt { detail, .. }) if detail.contains("regular")),
        "{got:?}"
    );
    let owner = OwnerId::random();
    assert!(
        lock.try_acquire(Claim::new(&n, &owner, ttl()))
            .await
            .is_err()
    );
    assert!(lock.path_of(&n).is_dir(), "left as it was");
}

/// A directory this process cannot write to: a read-only tmpfs when root (root ignores
/// modes), `chmod 500` otherwise. Made writable again (and unmounted) on drop.
struct ReadOnly {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl ReadOnly {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = nix::unistd::geteuid().is_root();
        if mounted {
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
                .arg(dir.path())
                .status()
                .expect("mount(8)");
            assert!(
                status.success(),
                "root must be able to mount a tmpfs for this test"
            );
        }
        Self { dir, mounted }
    }

    fn freeze(&self) {
        if self.mounted {
            let status = std::process::Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        } else {
            fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg(self.dir.path())
                .status();
        } else {
            let _ = fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o700));
        }
    }
}

#[tokio::test]
async fn a_read_only_directory_is_a_backend_error_that_changes_nothing() {
    let ro = ReadOnly::new();
    let lock = FileLock::new(ro.dir.path()).unwrap();
    let held = name("held");
    let owner = OwnerId::random();
    lock.try_acquire(Claim::new(&held, &owner, ttl()))
        .await
        .unwrap();
    ro.freeze();
    let err = lock
        .try_acquire(Claim::new(&name("new"), &owner, ttl()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(
        err.to_string().contains("new.lock"),
        "names the file: {err}"
    );
    assert!(
        matches!(lock.inspect(&held).await.unwrap(), LockState::Locked(h) if h.first().owner == owner)
    );
}

#[tokio::test]
async fn inspect_release_and_renew_of_an_unknown_name_create_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let n = name("never");
    let owner = OwnerId::random();
    assert_eq!(lock.inspect(&n).await.unwrap(), LockState::Open);
    assert_eq!(
        lock.release(&n, &owner).await.unwrap(),
        ReleaseOutcome::NotLocked
    );
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::NotLocked
    );
    assert_eq!(
        lock.renew(&n, &owner, ttl()).await.unwrap(),
        lock_core::RenewOutcome::Lost
    );
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn the_private_directory_refuses_one_others_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let err = FileLock::private(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("mode is 777"), "{err}");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
    FileLock::private(tmp.path()).unwrap();
}

#[tokio::test]
async fn a_lock_file_held_by_a_stopped_operation_is_an_error_not_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = FileLock::new(tmp.path()).unwrap();
    let (n, owner) = (name("frozen"), OwnerId::random());
    lock.try_acquire(Claim::new(&n, &owner, ttl()))
        .await
        .unwrap();
    // Another open file description holding the flock: a process stopped mid-operation.
    let stuck = fs::File::open(lock.path_of(&n)).unwrap();
    fs4::FileExt::lock(&stuck).unwrap();
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), lock.inspect(&n))
        .await
        .expect("an answer, not a hang");
    assert!(
        matches!(&answer, Err(Error::Unreachable { message, operation: Operation::Inspect, backend: "files", .. }) if message.contains("is that process stopped")),
        "{answer:?} after {:?}",
        started.elapsed()
    );
    drop(stuck);
    assert!(matches!(
        lock.release(&n, &owner).await.unwrap(),
        ReleaseOutcome::Released
    ));
}

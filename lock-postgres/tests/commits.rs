//! Which lease statements wait until their commit is on disk. A grant, a renewal and a force
//! release do: lost in a crash, a grant would let a token come again, a renewal would leave
//! its holder believing in a lease that ends sooner. An owner's release does not: lost, the
//! lease is back as its holder left it and runs out by itself, and the next grant, which does
//! wait, carries the release to disk with it (the WAL is one stream).
//!
//! With the WAL writer stopped (SIGSTOP), nothing but a commit that waits moves the flushed
//! position of the WAL, so the test reads which statements waited from that position.

use conformance_tests::kit::PostgresServer;
use lock_core::{
    AcquireOutcome, Claim, Lock, LockName, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};
use lock_postgres::LeaseLock;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The cluster's WAL writer, stopped until this is dropped.
struct WalWriterStopped(Pid);

impl WalWriterStopped {
    fn new(server: &PostgresServer) -> Self {
        let pid = server.psql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'");
        let pid = Pid::from_raw(pid.trim().parse().expect("one walwriter pid"));
        kill(pid, Signal::SIGSTOP).unwrap();
        Self(pid)
    }
}

impl Drop for WalWriterStopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// Where the WAL ends (`insert`) or is flushed to (`flush`), in bytes.
fn wal(server: &PostgresServer, which: &str) -> u64 {
    let out = server.psql(&format!(
        "SELECT pg_current_wal_{which}_lsn() - '0/0'::pg_lsn"
    ));
    out.trim().parse().expect("an LSN in bytes")
}

#[tokio::test]
async fn grants_renewals_and_force_releases_wait_for_the_disk_and_an_owners_release_does_not() {
    let server = PostgresServer::start();
    let lock = LeaseLock::connect(&server.url()).await.unwrap();
    let (name, a, b) = (
        LockName::new("commits").unwrap(),
        OwnerId::random(),
        OwnerId::random(),
    );
    let ttl = Ttl::from_millis(60_000).unwrap();
    // The tables exist and the row too, so that what follows writes only the row.
    assert!(matches!(
        lock.try_acquire(Claim::new(&name, &a, ttl)).await.unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert_eq!(
        lock.release(&name, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    let _stopped = WalWriterStopped::new(&server);

    let before = wal(&server, "insert");
    assert!(matches!(
        lock.try_acquire(Claim::new(&name, &a, ttl)).await.unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert!(wal(&server, "flush") > before, "a grant waits for the disk");

    let before = wal(&server, "insert");
    assert!(matches!(
        lock.renew(&name, &a, ttl).await.unwrap(),
        RenewOutcome::Renewed(_)
    ));
    assert!(
        wal(&server, "flush") > before,
        "a renewal waits for the disk"
    );

    let before = wal(&server, "insert");
    assert_eq!(
        lock.release(&name, &a).await.unwrap(),
        ReleaseOutcome::Released
    );
    let released = wal(&server, "insert");
    assert!(released > before, "the release wrote to the WAL");
    assert!(
        wal(&server, "flush") < released,
        "an owner's release does not wait for the disk"
    );

    assert!(matches!(
        lock.try_acquire(Claim::new(&name, &b, ttl)).await.unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    assert!(
        wal(&server, "flush") >= released,
        "the next grant carries the release to disk"
    );

    let before = wal(&server, "insert");
    assert_eq!(
        lock.force_release(&name).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert!(
        wal(&server, "flush") > before,
        "a force release waits for the disk"
    );
}

//! Session mode's tie (`Lock::tie` without `Capabilities::holder_tie`): a copy of the holding
//! connection's socket. Closing it while the handle lives ends nothing; the handle's release
//! ends the session however many copies are open. (That the copy keeps the lock alive after
//! the holder's process died is `lock-cli/tests/run_safety.rs`'s session-mode case.)

use std::io::Read;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::time::Duration;

use conformance_tests::kit::PostgresServer;
use lock_core::{
    AcquireOutcome, Claim, Lock, LockName, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};
use lock_postgres::SessionLock;

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).unwrap()
}

async fn two_handles(server: &PostgresServer) -> (SessionLock, SessionLock) {
    let url = format!("{}?mode=session", server.url());
    let a = SessionLock::connect(&url).await.unwrap();
    let b = SessionLock::connect(&url).await.unwrap();
    assert!(
        !a.capabilities().holder_tie,
        "closing copies ends nothing here"
    );
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_session_tie_while_the_handle_lives_ends_nothing() {
    let server = PostgresServer::start();
    let (a, b) = two_handles(&server).await;
    let (name, owner) = (LockName::new("tied").unwrap(), OwnerId::random());
    let AcquireOutcome::Acquired(lease) = a
        .try_acquire(Claim::new(&name, &owner, ttl()))
        .await
        .unwrap()
    else {
        panic!("a free name");
    };
    assert!(
        a.tie(&name, &OwnerId::random()).await.unwrap().is_none(),
        "another owner's"
    );
    let tie = a.tie(&name, &owner).await.unwrap().expect("a tie over TCP");
    drop(tie);
    match b
        .try_acquire(Claim::new(&name, &OwnerId::random(), ttl()))
        .await
        .unwrap()
    {
        AcquireOutcome::Held(holder) => assert_eq!(holder.token, lease.token),
        other => panic!("the lock ended with its tie's copy: {other:?}"),
    }
    assert!(matches!(
        a.renew(&name, &owner, ttl()).await.unwrap(),
        RenewOutcome::Renewed(_)
    ));
    assert_eq!(
        a.release(&name, &owner).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert!(matches!(
        b.try_acquire(Claim::new(&name, &OwnerId::random(), ttl()))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_ends_the_tied_session_while_a_copy_is_open() {
    let server = PostgresServer::start();
    let (a, b) = two_handles(&server).await;
    let (name, owner) = (LockName::new("tied").unwrap(), OwnerId::random());
    assert!(matches!(
        a.try_acquire(Claim::new(&name, &owner, ttl()))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    let copy = TcpStream::from(OwnedFd::from(
        a.tie(&name, &owner).await.unwrap().expect("a tie over TCP"),
    ));
    assert_eq!(
        a.release(&name, &owner).await.unwrap(),
        ReleaseOutcome::Released
    );
    // The socket was shut down, not left open behind the copy: the copy reads its end at once.
    copy.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let read = tokio::task::spawn_blocking(move || (&copy).read(&mut [0u8; 64]))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0)),
        "the tied connection lives on: {read:?}"
    );
    assert!(matches!(
        b.try_acquire(Claim::new(&name, &OwnerId::random(), ttl()))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
}

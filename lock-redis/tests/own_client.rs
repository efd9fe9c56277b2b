//! A lock from a `redis::Client` the application already has: its address, database and
//! credentials carry over, and the lock works as one made from a URL.

use std::time::Duration;

use conformance_tests::kit::RedisServer;
use lock_core::{AcquireOutcome, Claim, Error, Lock, LockName, LockState, OwnerId, Ttl};
use lock_redis::{Config, RedisLock};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

const PASSWORD: &str = "s3cret:/@pw";

#[tokio::test]
async fn a_lock_from_the_applications_client_uses_its_server_database_and_credentials() {
    let server = RedisServer::start_with_args(&["--requirepass", PASSWORD]);
    let port = server.port();
    let url = format!(
        "redis://:{}@127.0.0.1:{port}/3",
        utf8_percent_encode(PASSWORD, NON_ALPHANUMERIC)
    );
    let client = redis::Client::open(url.as_str()).expect("a client");
    let lock = RedisLock::from_client(&client).await.expect("a lock");
    assert_eq!((lock.config().db(), lock.config().port()), (3, port));
    assert!(!format!("{lock:?}").contains(PASSWORD), "{lock:?}");

    let name = LockName::new("job").unwrap();
    let owner = OwnerId::random();
    let ttl = Ttl::from_millis(60_000).unwrap();
    assert!(matches!(
        lock.try_acquire(Claim::new(&name, &owner, ttl))
            .await
            .unwrap(),
        AcquireOutcome::Acquired(_)
    ));
    // The same lock, seen through a handle made from the URL.
    let other = RedisLock::connect(&url).await.expect("a URL lock");
    match other.inspect(&name).await.unwrap() {
        LockState::Locked(hs) => assert_eq!(hs.first().owner, owner),
        state => panic!("not seen in db 3: {state:?}"),
    }
    // Wake-ups work too: the lock opened its own pub/sub connection.
    let change = lock
        .watch(&name)
        .await
        .unwrap()
        .expect("a pub/sub connection");
    other.force_release(&name).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), change)
        .await
        .expect("woken by the release");
}

#[tokio::test]
async fn a_client_on_a_unix_socket_is_refused_as_invalid_input() {
    let client = redis::Client::open("redis+unix:///tmp/no-such.sock").expect("a client");
    match Config::from_client(&client) {
        Err(Error::InvalidInput(e)) => assert!(e.to_string().contains("only TCP or TLS"), "{e}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

//! Connecting to what is not a usable Postgres: a clear error within the connect timeout,
//! never a hang, never the password.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use conformance_tests::kit::{PostgresServer, free_port};
use lock_core::{Error, InvalidInput, Lock};
use lock_postgres::LeaseLock;

const PASSWORD: &str = "correct-horse-7f3a";
const WRONG: &str = "battery-staple-91c2";

/// Connects to `url`, expecting an error within `within`; returns it as text (Display and
/// Debug), checked to hold neither password.
async fn refused(url: &str, within: Duration) -> (Error, String) {
    let started = Instant::now();
    let result = LeaseLock::connect(url).await;
    let elapsed = started.elapsed();
    assert!(elapsed < within, "{url}: took {elapsed:?}");
    let e = match result {
        Ok(lock) => panic!("{url}: connected: {lock:?}"),
        Err(e) => e,
    };
    println!("{e}");
    let text = format!("{e} / {e:?}");
    for secret in [PASSWORD, WRONG] {
        assert!(!text.contains(secret), "the password leaks: {text}");
    }
    (e, text)
}

#[tokio::test]
async fn nothing_listening_is_unreachable_at_once() {
    let port = free_port();
    let url = format!("postgres://postgres:{WRONG}@127.0.0.1:{port}/postgres?connect_timeout=5");
    let (e, text) = refused(&url, Duration::from_secs(2)).await;
    assert!(matches!(e, Error::Unreachable { .. }), "{text}");
    assert!(
        text.contains("connection refused") && text.contains(&port.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, then says nothing.
    let _silent = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(4) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let url = format!("postgres://postgres:{WRONG}@127.0.0.1:{port}/postgres?connect_timeout=1");
    let (e, text) = refused(&url, Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Unreachable { .. }), "{text}");
    assert!(
        text.contains("no answer") && text.contains(&port.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_is_not_postgres_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Answers like a web server, then hangs up.
    let _http = std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let url = format!(
        "postgres://postgres:{WRONG}@127.0.0.1:{port}/postgres?connect_timeout=2&sslmode=disable"
    );
    let (e, text) = refused(&url, Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Unreachable { .. }), "{text}");
    assert!(text.contains(&port.to_string()), "{text}");
}

#[tokio::test]
async fn wrong_password_and_wrong_database_are_refused_clearly() {
    let server = PostgresServer::start_with_password("alice", PASSWORD);
    let port = server.port();
    let good = format!("postgres://alice:{PASSWORD}@127.0.0.1:{port}/postgres?connect_timeout=2");
    let lock = LeaseLock::connect(&good)
        .await
        .expect("the right password works");
    assert!(
        !format!("{lock:?}").contains(PASSWORD),
        "Debug leaks: {lock:?}"
    );
    lock.inspect(&"x".parse().unwrap()).await.unwrap();

    let bad = format!("postgres://alice:{WRONG}@127.0.0.1:{port}/postgres?connect_timeout=2");
    let (e, text) = refused(&bad, Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Backend { .. }), "{text}");
    assert!(
        text.contains("refused the login") && text.contains("alice"),
        "{text}"
    );

    let in_query =
        format!("postgres://alice@127.0.0.1:{port}/postgres?password={WRONG}&connect_timeout=2");
    let (e, text) = refused(&in_query, Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Backend { .. }), "{text}");

    let no_db = format!("postgres://alice:{PASSWORD}@127.0.0.1:{port}/nosuchdb?connect_timeout=2");
    let (e, text) = refused(&no_db, Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Backend { .. }), "{text}");
    assert!(text.contains("nosuchdb"), "{text}");
}

#[tokio::test]
async fn bad_urls_are_refused_before_connecting() {
    for url in [
        "postgres://u:secret-pw@127.0.0.1:1/db?sslmode=maybe",
        "postgres://u:secret-pw@127.0.0.1:1/db?mode=session&pgbouncer=true",
        "postgres://u:secret-pw@127.0.0.1:1/db?table=x;drop",
        "mysql://u:secret-pw@127.0.0.1:1/db",
    ] {
        let (e, text) = refused(url, Duration::from_millis(500)).await;
        assert!(
            matches!(e, Error::InvalidInput(InvalidInput::Config(_))),
            "{text}"
        );
        assert!(!text.contains("secret-pw"), "{text}");
    }
}

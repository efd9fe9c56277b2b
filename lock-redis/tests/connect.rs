//! Connecting: hosts where nothing answers, servers that are not Redis, wrong credentials and
//! TLS, each with a clear error within the connect timeout and never the password.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use conformance_tests::kit::{RedisServer, free_port};
use lock_core::{Acquisition, Claim, Error, Lock, LockName, OwnerId, ReleaseOutcome, Ttl, Wait};
use lock_redis::RedisLock;

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).expect("a ttl")
}

/// Connects to `url`, expecting an error within `within`.
async fn refused(url: &str, within: Duration) -> Error {
    let started = Instant::now();
    let result = RedisLock::connect(url).await;
    let took = started.elapsed();
    assert!(took < within, "{url}: took {took:?}, more than {within:?}");
    match result {
        Ok(lock) => panic!("{url}: connected to {lock:?}"),
        Err(e) => {
            eprintln!("{e}");
            e
        }
    }
}

/// A listener on a free loopback port whose every connection is handed to `serve` on a
/// thread of its own.
fn fake_server(serve: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}

#[tokio::test]
async fn nothing_listening_is_unreachable_at_once() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let e = refused(&url, Duration::from_secs(2)).await;
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert_eq!(e.operation(), Some(lock_core::Operation::Connect));
    assert_eq!(e.backend_name(), Some("Redis"));
    assert!(e.to_string().contains("refused"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_connect_timeout() {
    let port = fake_server(|mut stream| {
        // Read and say nothing, until the client hangs up.
        let mut buf = [0u8; 1024];
        while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let url = format!("redis://127.0.0.1:{port}?connect_timeout=500ms");
    let started = Instant::now();
    let e = refused(&url, Duration::from_secs(2)).await;
    assert!(started.elapsed() >= Duration::from_millis(450));
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("did not answer within 500ms"), "{e}");
}

#[tokio::test]
async fn a_server_that_speaks_another_protocol_is_named_so() {
    let http = fake_server(|mut stream| {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        std::thread::sleep(Duration::from_millis(500));
    });
    let e = refused(&format!("redis://127.0.0.1:{http}"), Duration::from_secs(2)).await;
    assert!(
        e.to_string().contains("does not speak the Redis protocol"),
        "{e}"
    );

    // Postgres, sent a Redis command where it expects a startup packet, hangs up without a
    // word.
    let postgres_like = fake_server(|mut stream| {
        let mut buf = [0u8; 8];
        let _ = stream.read_exact(&mut buf);
    });
    let e = refused(
        &format!("redis://127.0.0.1:{postgres_like}"),
        Duration::from_secs(2),
    )
    .await;
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("closed the connection without answering"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unknown_host_is_unreachable_within_the_connect_timeout() {
    let url = "redis://no-such-host.invalid:6379?connect_timeout=2s";
    let e = refused(url, Duration::from_secs(4)).await;
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn a_bad_url_is_invalid_input_and_hides_the_password() {
    for url in [
        "redis://u:hunter2@h:0",
        "redis://u:hunter2@h/x",
        "redis://u:hunter2@h?nope=1",
    ] {
        let e = refused(url, Duration::from_secs(1)).await;
        assert!(e.is_invalid_input(), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
    }
}

#[tokio::test]
async fn credentials_are_checked_and_never_shown() {
    let server = tokio::task::spawn_blocking(|| {
        RedisServer::start_with_args(&["--requirepass", "s3cret-Pa55"])
    })
    .await
    .expect("the server starts");
    let port = server.port();

    let wrong = "hunter2-wr0ng";
    for url in [
        format!("redis://:{wrong}@127.0.0.1:{port}"),
        format!("redis://default:{wrong}@127.0.0.1:{port}"),
        format!("redis://nobody:{wrong}@127.0.0.1:{port}"),
    ] {
        let e = refused(&url, Duration::from_secs(2)).await;
        let all = format!("{e} / {e:?} / {:?}", std::error::Error::source(&e));
        assert!(matches!(e, Error::Backend { .. }), "{all}");
        assert!(e.to_string().contains("authentication failed"), "{all}");
        assert!(!all.contains(wrong), "the password leaked: {all}");
    }

    let e = refused(&format!("redis://127.0.0.1:{port}"), Duration::from_secs(2)).await;
    assert!(e.to_string().contains("requires authentication"), "{e}");

    for url in [
        format!("redis://:s3cret-Pa55@127.0.0.1:{port}"),
        format!("redis://default:s3cret-Pa55@127.0.0.1:{port}/1"),
    ] {
        let lock = RedisLock::connect(&url).await.expect("the right password");
        assert!(!format!("{lock:?}").contains("s3cret"), "{lock:?}");
        let name = LockName::new("n").unwrap();
        let got = lock_core::acquire(
            &lock,
            Claim::new(&name, &OwnerId::random(), ttl()),
            Wait::No,
        )
        .await;
        assert!(matches!(got, Ok(Acquisition::Acquired(_))), "{got:?}");
        assert_eq!(
            lock.force_release(&name).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
}

/// Makes a CA and a certificate for `localhost` and 127.0.0.1 signed by it, with openssl.
fn make_certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is needed to make test certificates: apt-get install -y openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=lock-redis test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_talks_tls_and_checks_the_certificate() {
    let certs = tempfile::tempdir().expect("a temp dir");
    make_certificates(certs.path());
    let tls_port = free_port();
    let file = |name: &str| certs.path().join(name).to_str().expect("UTF-8").to_owned();
    let args = [
        "--tls-port".to_owned(),
        tls_port.to_string(),
        "--tls-cert-file".to_owned(),
        file("server.crt"),
        "--tls-key-file".to_owned(),
        file("server.key"),
        "--tls-ca-cert-file".to_owned(),
        file("ca.crt"),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
    ];
    let _server = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        RedisServer::start_with_args(&args)
    })
    .await
    .expect("a TLS redis-server");

    let ca = file("ca.crt");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("rediss://{host}:{tls_port}?tls_ca={ca}");
        let (a, b) = (
            RedisLock::connect(&url).await.expect("TLS with our CA"),
            RedisLock::connect(&url).await.expect("TLS with our CA"),
        );
        let name = LockName::new(format!("tls-{host}")).unwrap();
        let (x, y) = (OwnerId::random(), OwnerId::random());
        let got = lock_core::acquire(&a, Claim::new(&name, &x, ttl()), Wait::No)
            .await
            .unwrap();
        assert!(matches!(got, Acquisition::Acquired(_)));
        // A waiter on the TLS pub/sub connection is woken by the release.
        let waiter = {
            let (b, name, y) = (b.clone(), name.clone(), y.clone());
            tokio::spawn(async move {
                lock_core::acquire(&b, Claim::new(&name, &y, ttl()), Wait::Forever).await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            a.release(&name, &x).await.unwrap(),
            ReleaseOutcome::Released
        );
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken");
        assert!(matches!(got.unwrap().unwrap(), Acquisition::Acquired(_)));
    }

    // The public web roots do not vouch for our CA.
    let e = refused(
        &format!("rediss://localhost:{tls_port}"),
        Duration::from_secs(2),
    )
    .await;
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    // Plain text to a TLS port.
    let url = format!("redis://127.0.0.1:{tls_port}?connect_timeout=1s");
    let e = refused(&url, Duration::from_secs(3)).await;
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    // A CA file that is not there.
    let e = refused(
        &format!("rediss://localhost:{tls_port}?tls_ca=/no/such.pem"),
        Duration::from_secs(1),
    )
    .await;
    assert!(e.is_invalid_input(), "{e:?}");
}

//! Names full of Redis's special characters, and the key layout's own separators, never reach
//! another name's keys; foreign content at a key is reported, not overwritten, and a force
//! release repairs it.

use std::collections::HashSet;

use conformance_tests::kit::{RedisServer, Shared};
use lock_core::{
    AcquireOutcome, Claim, Error, FencingToken, Lock, LockName, LockState, OwnerId, ReleaseOutcome,
    Ttl,
};
use lock_redis::RedisLock;
use redis::AsyncCommands;

static SERVER: Shared<RedisServer> = Shared::new(RedisServer::start);

fn url() -> String {
    SERVER.with(RedisServer::url)
}

fn ttl() -> Ttl {
    Ttl::from_millis(60_000).expect("a ttl")
}

async fn connect(url: &str) -> RedisLock {
    RedisLock::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// A plain client, to look at and tamper with the keys behind the library's back.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .expect("a client")
        .get_multiplexed_async_connection()
        .await
        .expect("a raw connection")
}

fn acquired(outcome: AcquireOutcome) -> FencingToken {
    match outcome {
        AcquireOutcome::Acquired(lease) => lease.token,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// Each test works under a prefix of its own, so they share the server but no keys.
fn prefix(test: &str) -> String {
    format!("t:{test}:{}:", &OwnerId::random().as_str()[..8])
}

#[tokio::test]
async fn hostile_names_are_locks_of_their_own() {
    let prefix = prefix("hostile");
    let lock = connect(&format!("{}?prefix={prefix}", url())).await;
    let names = [
        "a",
        "a}",
        "{a}",
        "{a",
        "a}:lease",
        "a}:token",
        "a}:released",
        "}",
        "{",
        "{}",
        "}{",
        "{{}}",
        "*",
        "?",
        "[",
        "*?[{}",
        "[a-z]*",
        "a b",
        " ",
        "  a ",
        "%",
        "%7B",
        "%7D",
        "%25",
        "a%7Db",
        "a\\b",
        "\"",
        "'",
        ":",
        "a:lease",
        "a::b",
        "lock:",
        "lock:{a}",
        "lock:{a}:lease",
        &prefix,
        &format!("{prefix}{{a}}:lease"),
        "é",
        "🔒",
        "a\u{200b}b",
        "a\u{a0}b",
    ];
    let mut holders = Vec::new();
    for text in names {
        let name = LockName::new(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let owner = OwnerId::random();
        let token = acquired(
            lock.try_acquire(Claim::new(&name, &owner, ttl()))
                .await
                .unwrap(),
        );
        holders.push((name, owner, token));
    }
    for (name, owner, token) in &holders {
        match lock.inspect(name).await.unwrap() {
            LockState::Locked(hs) => assert_eq!(
                (&hs.first().owner, hs.first().token),
                (owner, *token),
                "{name:?}"
            ),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    // Exactly a lease and a token key per name, and nothing else under the prefix.
    let mut conn = raw().await;
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.expect("KEYS");
    let keys: HashSet<String> = keys.into_iter().collect();
    let expected: HashSet<String> = holders
        .iter()
        .flat_map(|(name, _, _)| {
            let k = lock.keys(name);
            [k.lease, k.token]
        })
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(keys.len(), 2 * names.len());
    for (name, owner, _) in &holders {
        assert_eq!(
            lock.release(name, owner).await.unwrap(),
            ReleaseOutcome::Released,
            "{name:?}"
        );
    }
    // Names that LockName refuses never reach the backend at all.
    for bad in ["a\r\nb", "a\nb", "a\rb", "\0", "a\u{7f}"] {
        assert!(LockName::new(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn two_prefixes_never_share_a_lock() {
    let base = prefix("two");
    let (inner, outer) = (format!("{base}x:"), base.clone());
    let a = connect(&format!("{}?prefix={inner}", url())).await;
    let b = connect(&format!("{}?prefix={outer}", url())).await;
    // b's name reads like a's prefix and key; a's name is plain.
    let plain = LockName::new("a").unwrap();
    let lookalike = LockName::new("x:{a}:lease").unwrap();
    let lookalike2 = LockName::new("x:").unwrap();
    acquired(
        a.try_acquire(Claim::new(&plain, &OwnerId::random(), ttl()))
            .await
            .unwrap(),
    );
    acquired(
        b.try_acquire(Claim::new(&plain, &OwnerId::random(), ttl()))
            .await
            .unwrap(),
    );
    acquired(
        b.try_acquire(Claim::new(&lookalike, &OwnerId::random(), ttl()))
            .await
            .unwrap(),
    );
    acquired(
        b.try_acquire(Claim::new(&lookalike2, &OwnerId::random(), ttl()))
            .await
            .unwrap(),
    );
    for (lock, name) in [
        (&a, &plain),
        (&b, &plain),
        (&b, &lookalike),
        (&b, &lookalike2),
    ] {
        assert_eq!(
            lock.force_release(name).await.unwrap(),
            ReleaseOutcome::Released
        );
    }
}

#[tokio::test]
async fn foreign_content_is_reported_and_force_release_repairs_it() {
    let prefix = prefix("foreign");
    let lock = connect(&format!("{}?prefix={prefix}", url())).await;
    let mut conn = raw().await;
    let owner = OwnerId::random();
    let corrupt = |r: Result<_, Error>| matches!(r, Err(Error::Corrupt { .. }));

    // Garbage text at the lease key.
    let n = LockName::new("garbled").unwrap();
    let k = lock.keys(&n);
    let () = conn.set(&k.lease, "not a lease").await.unwrap();
    match lock.inspect(&n).await {
        Err(Error::Corrupt { location, .. }) => assert!(location.contains(&k.lease), "{location}"),
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert!(corrupt(
        lock.try_acquire(Claim::new(&n, &owner, ttl()))
            .await
            .map(|_| ())
    ));
    assert!(corrupt(lock.renew(&n, &owner, ttl()).await.map(|_| ())));
    assert!(corrupt(lock.release(&n, &owner).await.map(|_| ())));
    let still: String = conn.get(&k.lease).await.unwrap();
    assert_eq!(still, "not a lease", "left as it was");
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::Released
    );
    acquired(
        lock.try_acquire(Claim::new(&n, &owner, ttl()))
            .await
            .unwrap(),
    );

    // Another type at the lease key.
    let n = LockName::new("hashed").unwrap();
    let k = lock.keys(&n);
    let () = conn.hset(&k.lease, "owner", "x").await.unwrap();
    assert!(corrupt(lock.inspect(&n).await.map(|_| ())));
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(lock.inspect(&n).await.unwrap(), LockState::Open);

    // A token counter that is not a number.
    let n = LockName::new("counted").unwrap();
    let k = lock.keys(&n);
    let () = conn.set(&k.token, "seven").await.unwrap();
    match lock.try_acquire(Claim::new(&n, &owner, ttl())).await {
        Err(Error::Corrupt { location, .. }) => assert!(location.contains(&k.token), "{location}"),
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::Released
    );
    let token = acquired(
        lock.try_acquire(Claim::new(&n, &owner, ttl()))
            .await
            .unwrap(),
    );
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    assert!(
        token.get() > micros - 60_000_000,
        "{token} starts from the server clock"
    );

    // Another type at the line's keys: waiting in line is refused, naming the key; a single
    // try does not look at the line; force release repairs it.
    let n = LockName::new("lined").unwrap();
    let k = lock.keys(&n);
    let () = conn.set(&k.line, "not a line").await.unwrap();
    let patience = std::time::Duration::from_secs(1);
    match lock
        .try_acquire_in_line(Claim::new(&n, &owner, ttl()), patience)
        .await
    {
        Err(Error::Corrupt { location, .. }) => assert!(location.contains(&k.line), "{location}"),
        other => panic!("expected corrupt, got {other:?}"),
    }
    assert!(corrupt(lock.leave_line(&n, &owner).await));
    let still: String = conn.get(&k.line).await.unwrap();
    assert_eq!(still, "not a line", "left as it was");
    acquired(
        lock.try_acquire(Claim::new(&n, &owner, ttl()))
            .await
            .unwrap(),
    );
    assert_eq!(
        lock.release(&n, &owner).await.unwrap(),
        ReleaseOutcome::Released
    );
    let () = conn.set(&k.kept, "not kept").await.unwrap();
    assert_eq!(
        lock.force_release(&n).await.unwrap(),
        ReleaseOutcome::Released,
        "repaired"
    );
    let lease = lock
        .try_acquire_in_line(Claim::new(&n, &owner, ttl()), patience)
        .await
        .unwrap();
    assert!(
        matches!(lease, lock_core::raw::InLineOutcome::Acquired(_)),
        "{lease:?}"
    );

    // A token counter far ahead of the clock keeps counting from where it is.
    let n = LockName::new("ahead").unwrap();
    let k = lock.keys(&n);
    let () = conn.set(&k.token, "9000000000000000").await.unwrap();
    assert_eq!(
        acquired(
            lock.try_acquire(Claim::new(&n, &owner, ttl()))
                .await
                .unwrap()
        )
        .get(),
        9_000_000_000_000_001
    );
}

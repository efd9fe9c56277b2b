//! Names and bad input.

use super::support::*;

/// names: two different names are two different locks (`a/b`, `a%2Fb`, `A/b`, `..`, emoji, 255 bytes).
pub async fn names_never_collide(s: &Suite) {
    let long = format!("{}{}", "🔒", "x".repeat(255 - "🔒".len()));
    let names = [
        "a/b",
        "a%2Fb",
        "a_b",
        "A/b",
        "a-b",
        "a.b",
        "a b",
        "a%2fb",
        "a\\b",
        ".",
        "..",
        "./.",
        "../../etc/passwd",
        "/abs",
        "~",
        "*",
        "?",
        "[x]",
        "{x}",
        "🔒",
        "é",
        "e\u{301}",
        long.as_str(),
    ];
    let names: Vec<LockName> = names.iter().map(|n| LockName::new(*n).expect(n)).collect();
    let any = s.client().await;
    for name in &names {
        // Leftovers of an earlier, failed run against the same backend must not decide this one.
        any.force_release(name).await;
    }
    let mut clients = Vec::new();
    for name in &names {
        let c = s.client().await;
        let lease = acquired(c.acquire(name, ttl(LONG)).await);
        clients.push((c, lease));
    }
    for (name, (c, lease)) in names.iter().zip(&clients) {
        let holder = locked(any.inspect(name).await);
        assert_eq!(
            (&holder.owner, holder.token),
            (&c.owner, lease.token),
            "{name:?} must be a lock of its own"
        );
    }
    for (name, (c, _)) in names.iter().zip(&clients) {
        assert_eq!(c.release(name).await, ReleaseOutcome::Released, "{name:?}");
    }
}

/// bad input: bad names and ttls are refused before the backend is touched.
pub async fn bad_input_is_refused_before_the_backend(s: &Suite) {
    for bad in ["", "nul\0", "line\nfeed", "\u{7f}", &"x".repeat(256)] {
        assert!(LockName::new(bad).is_err(), "{bad:?} must be refused");
    }
    for bad in [0, 365 * 24 * 3600 * 1000 + 1, u64::MAX] {
        assert!(
            Ttl::from_millis(bad).is_err(),
            "ttl {bad} ms must be refused"
        );
    }
    assert!(Ttl::from_millis_signed(-1).is_err());
    assert!(Ttl::new(Duration::from_micros(500)).is_err());
    assert!(OwnerId::new("").is_err() && OwnerId::new("has space").is_err());
    let guard = Guard::acquire(
        s.handle().await,
        s.name("n"),
        AcquireOptions::new()
            .ttl(ttl(100))
            .renew_every(Duration::from_millis(100)),
    )
    .await;
    assert!(matches!(guard, Err(e) if e.is_invalid_input()));
    let a = s.client().await;
    assert_eq!(
        a.inspect(&s.name("n")).await,
        LockState::Open,
        "nothing was taken"
    );
}

//! One `pub async fn` per guarantee of the contract (`docs/contract.md`), each documented by
//! the line of it that it checks. `suite!` turns each into a `#[test]`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lock_core::raw::InLineOutcome;
use lock_core::{
    AcquireOptions, AcquireOutcome, Acquisition, Guard, Holder, Lease, Lock, LockName, LockState,
    LossReason, OwnerId, ReleaseOutcome, RenewOutcome, Ttl, Wait,
};

use crate::suite::{Suite, sleep_ms, ttl};

mod tie;
pub use tie::*;

/// Long enough never to lapse during a case.
const LONG: u64 = 60_000;
/// Short enough to watch lapse (the contract's 100–300 ms). Only for leases that a case waits
/// to see lapse: a slow machine can only make that wait longer, never the assertion wrong.
const SHORT: u64 = 200;
/// For leases that must *not* lapse before the case's next operation lands: long enough for a
/// durable commit on a loaded two-core machine, short enough to watch lapse.
const RENEWABLE: u64 = 1_000;
/// How long a case waits for something that should come promptly before it calls it missing.
const PATIENCE: Duration = Duration::from_secs(10);

/// The lease of an acquired answer, from a plain try or one in line.
fn acquired(outcome: impl Into<InLineOutcome>) -> Lease {
    match outcome.into() {
        InLineOutcome::Acquired(lease) => lease,
        other => panic!("expected acquired, got {other:?}"),
    }
}

/// The holder of a held answer, from a plain try or one in line.
fn held(outcome: impl Into<InLineOutcome>) -> Holder {
    match outcome.into() {
        InLineOutcome::Held(holder) => holder,
        other => panic!("expected held, got {other:?}"),
    }
}

/// A guard on `name` with a ttl of `ttl_ms`, taken without waiting.
async fn held_guard(lock: Arc<dyn Lock>, name: &LockName, ttl_ms: u64) -> Guard {
    let options = AcquireOptions::new().ttl(ttl(ttl_ms)).wait(Wait::No);
    Guard::acquire(lock, name.clone(), options)
        .await
        .expect("acquire")
        .acquired()
        .expect("acquired")
}

/// Behind, the first place ahead kept for at most `kept_ms`.
fn behind(outcome: InLineOutcome, kept_ms: u64) {
    match outcome {
        InLineOutcome::Behind { first_kept_for } => assert!(
            first_kept_for <= Duration::from_millis(kept_ms),
            "the first place is kept for {first_kept_for:?}, over the {kept_ms} ms it asked for"
        ),
        other => panic!("expected behind, got {other:?}"),
    }
}

fn locked(state: LockState) -> Holder {
    match state {
        LockState::Locked(holder) => holder,
        other => panic!("expected locked, got {other:?}"),
    }
}

/// try acquire, no live lease: acquired with a token; the caller holds it.
pub async fn acquire_open_name(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!((&lease.name, &lease.owner), (&name, &a.owner));
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
}

/// try acquire, another owner's live lease: held (who, time left); nothing changes.
pub async fn acquire_held_name_is_refused(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    let holder = held(b.acquire(&name, ttl(LONG)).await);
    assert_eq!((&holder.owner, holder.token), (&a.owner, lease.token));
    if s.capabilities().expiry {
        let left = holder
            .expires_in
            .expect("a lease with expiry says its time left");
        assert!(
            left <= Duration::from_millis(LONG) && !left.is_zero(),
            "time left {left:?}"
        );
    }
    let still = locked(b.inspect(&name).await);
    assert_eq!((still.owner, still.token), (a.owner.clone(), lease.token));
}

/// try acquire, own live lease: acquired with the same token; expiry moves to now + ttl.
pub async fn reacquire_by_holder_keeps_token(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let first = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    let again = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(
        first.token, again.token,
        "an idempotent retry keeps its token"
    );
    if s.capabilities().expiry {
        // The retry's longer ttl took effect: the lease outlives the first ttl.
        sleep_ms(RENEWABLE + 500).await;
        let holder = locked(a.inspect(&name).await);
        assert_eq!((holder.owner, holder.token), (a.owner.clone(), first.token));
    }
}

/// renew, own live lease: renewed; expiry moves to now + ttl, same token.
pub async fn renew_extends_own_lease(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    for _ in 0..5 {
        sleep_ms(RENEWABLE / 4).await;
        match a.renew(&name, ttl(RENEWABLE)).await {
            RenewOutcome::Renewed(renewed) => assert_eq!(renewed.token, lease.token),
            other => panic!("expected renewed, got {other:?}"),
        }
    }
    // Five renewals carried it past its first ttl.
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
}

/// renew, lease expired: lost; nothing changes (the lease is not re-created).
pub async fn renew_after_expiry_is_lost(s: &Suite) {
    if !s.requires("expiry", s.capabilities().expiry) {
        return;
    }
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    sleep_ms(SHORT + 150).await;
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// renew, lease released: lost; nothing changes.
pub async fn renew_after_release_is_lost(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// renew, another owner's lease: lost; that lease is never extended.
pub async fn renew_never_extends_another_owner(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    assert_eq!(b.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
    let holder = locked(b.inspect(&name).await);
    assert_eq!((&holder.owner, holder.token), (&a.owner, lease.token));
    if s.capabilities().expiry {
        // Still on a's ttl: it lapses, and b's renew did not keep it alive.
        sleep_ms(RENEWABLE + 500).await;
        assert_eq!(b.inspect(&name).await, LockState::Open);
    }
}

/// release, own live lease: released; open at once, so another client acquires.
pub async fn release_by_holder_opens_at_once(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    assert_eq!(b.inspect(&name).await, LockState::Open);
    acquired(b.acquire(&name, ttl(LONG)).await);
}

/// release, another owner's live lease: not owner; nothing changes.
pub async fn release_by_non_owner_changes_nothing(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(b.release(&name).await, ReleaseOutcome::NotOwner);
    let holder = locked(a.inspect(&name).await);
    assert_eq!((holder.owner, holder.token), (a.owner.clone(), lease.token));
    held(b.acquire(&name, ttl(LONG)).await);
}

/// release, no live lease: not locked; nothing changes.
pub async fn release_when_open_is_not_locked(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    assert_eq!(a.release(&name).await, ReleaseOutcome::NotLocked);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// release, own lease that expired: not locked.
pub async fn release_after_expiry_is_not_locked(s: &Suite) {
    if !s.requires("expiry", s.capabilities().expiry) {
        return;
    }
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    sleep_ms(SHORT + 150).await;
    assert_eq!(a.release(&name).await, ReleaseOutcome::NotLocked);
}

/// force release, any live lease: released; open at once; the next token is higher.
pub async fn force_release_opens_any_lease(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let first = acquired(a.acquire(&name, ttl(LONG)).await);
    assert_eq!(b.force_release(&name).await, ReleaseOutcome::Released);
    assert_eq!(b.inspect(&name).await, LockState::Open);
    let next = acquired(b.acquire(&name, ttl(LONG)).await);
    if s.capabilities().fencing {
        assert!(
            next.token > first.token,
            "{:?} after {:?}",
            next.token,
            first.token
        );
    }
    assert_eq!(a.renew(&name, ttl(LONG)).await, RenewOutcome::Lost);
}

/// force release, no live lease: not locked; nothing changes.
pub async fn force_release_when_open_is_not_locked(s: &Suite) {
    let a = s.client().await;
    let name = s.name("n");
    assert_eq!(a.force_release(&name).await, ReleaseOutcome::NotLocked);
    assert_eq!(a.inspect(&name).await, LockState::Open);
}

/// inspect: open, or locked with owner, token and time left; nothing changes.
pub async fn inspect_reports_and_changes_nothing(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    assert_eq!(b.inspect(&name).await, LockState::Open);
    acquired(b.acquire(&name, ttl(LONG)).await);
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    let lease = acquired(a.acquire(&name, ttl(LONG)).await);
    for _ in 0..3 {
        let holder = locked(b.inspect(&name).await);
        assert_eq!((&holder.owner, holder.token), (&a.owner, lease.token));
        if s.capabilities().expiry {
            let left = holder.expires_in.expect("time left");
            assert!(left <= Duration::from_millis(LONG) && !left.is_zero());
        }
    }
}

/// expiry: a lease not renewed lapses after its ttl (and not before), then anyone acquires.
pub async fn lease_expires_after_ttl(s: &Suite) {
    if !s.requires("expiry", s.capabilities().expiry) {
        return;
    }
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let lease = acquired(a.acquire(&name, ttl(RENEWABLE)).await);
    let holder = held(b.acquire(&name, ttl(LONG)).await);
    assert_eq!(holder.token, lease.token, "live right after the grant");
    sleep_ms(RENEWABLE + 500).await;
    assert_eq!(b.inspect(&name).await, LockState::Open);
    let next = acquired(b.acquire(&name, ttl(LONG)).await);
    if s.capabilities().fencing {
        assert!(next.token > lease.token);
    }
}

/// fencing: tokens strictly increase across release, expiry and force release.
pub async fn tokens_rise_across_release_expiry_and_force(s: &Suite) {
    if !s.requires("fencing", s.capabilities().fencing) {
        return;
    }
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    let mut tokens = vec![acquired(a.acquire(&name, ttl(LONG)).await).token];
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    tokens.push(acquired(b.acquire(&name, ttl(SHORT)).await).token);
    if s.capabilities().expiry {
        sleep_ms(SHORT + 150).await;
    } else {
        assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    }
    tokens.push(acquired(a.acquire(&name, ttl(LONG)).await).token);
    assert_eq!(b.force_release(&name).await, ReleaseOutcome::Released);
    tokens.push(acquired(b.acquire(&name, ttl(LONG)).await).token);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens must strictly rise: {tokens:?}"
    );
}

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

/// racing try acquires on an open name: exactly one of 32 clients wins.
pub async fn racing_clients_exactly_one_wins(s: &Suite) {
    let name = s.name("n");
    let mut clients = Vec::new();
    for _ in 0..32 {
        clients.push(s.client().await);
    }
    let start = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (name, start) = (name.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let outcome = c.acquire(&name, ttl(LONG)).await;
                // The client stays connected until every try is in: on a backend whose lock
                // lives on the connection, dropping the winner's handle would release it.
                (c, outcome)
            })
        })
        .collect();
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.expect("task"));
    }
    let mut winners = Vec::new();
    let mut seen_holders = HashSet::new();
    for (c, outcome) in &finished {
        match outcome {
            AcquireOutcome::Acquired(lease) => winners.push((c.owner.clone(), lease.token)),
            AcquireOutcome::Held(h) => {
                seen_holders.insert((h.owner.clone(), h.token));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let expected: HashSet<_> = winners.into_iter().collect();
    assert_eq!(seen_holders, expected, "every loser saw the winner");
}

/// one handle shared by many tasks, each its own owner: one winner per name, every name its own.
pub async fn one_handle_many_tasks(s: &Suite) {
    if !s.requires("owner_on_any_handle", s.capabilities().owner_on_any_handle) {
        return;
    }
    let lock = s.handle().await;
    let shared = s.name("shared");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (lock, shared, own) = (lock.clone(), shared.clone(), s.name(&format!("own-{i}")));
            tokio::spawn(async move {
                let owner = OwnerId::random();
                let won = lock
                    .try_acquire(&shared, &owner, ttl(LONG))
                    .await
                    .expect("try_acquire");
                let mine = lock
                    .try_acquire(&own, &owner, ttl(LONG))
                    .await
                    .expect("try_acquire");
                assert!(
                    matches!(mine, AcquireOutcome::Acquired(_)),
                    "{own:?}: {mine:?}"
                );
                assert_eq!(
                    lock.release(&own, &owner).await.expect("release"),
                    ReleaseOutcome::Released
                );
                matches!(won, AcquireOutcome::Acquired(_))
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.expect("task"));
    }
    assert_eq!(wins, 1);
}

/// acquire with wait: a waiter is handed the lock promptly when the holder releases.
pub async fn waiter_wakes_on_release(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    let waiter = {
        let (name, b) = (name.clone(), b.clone());
        tokio::spawn(async move { b.wait(&name, ttl(LONG), Wait::Forever).await })
    };
    sleep_ms(100).await;
    assert!(!waiter.is_finished(), "the waiter waits while a holds");
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    // The holder's ttl is a minute: only the release can have woken it this soon.
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("woken by the release, not the expiry")
        .expect("task");
    assert!(matches!(&got, Acquisition::Acquired(l) if l.owner == b.owner));
}

/// watch: a release wakes every plain watcher, and the turn of the first in line.
pub async fn release_wakes_watchers_and_the_first_in_line(s: &Suite) {
    if !s.requires("wake_on_release", s.capabilities().wake_on_release) {
        return;
    }
    let [a, b, c, w] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    // b stands first, c behind it (a plain try each where the backend keeps no line).
    held(b.in_line(&name, ttl(LONG), keep).await);
    held(c.in_line(&name, ttl(LONG), keep).await);
    let turn = b
        .lock
        .watch_turn(&name, &b.owner)
        .await
        .expect("watch_turn");
    let plain = w.lock.watch(&name).await.expect("watch");
    let (turn, plain) = (
        turn.expect("a turn to watch"),
        plain.expect("a name to watch"),
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    tokio::time::timeout(PATIENCE, turn)
        .await
        .expect("the first in line is woken by the release");
    tokio::time::timeout(PATIENCE, plain)
        .await
        .expect("a plain watcher is woken by the release, whoever stands in line");
}

/// watch: a waiter leaving the line of an open name wakes the turn of the one now first.
pub async fn leaving_the_line_wakes_the_next_turn(s: &Suite) {
    if !s.requires("wake_on_release", s.capabilities().wake_on_release)
        || !s.requires("fair_line", s.capabilities().fair_line)
    {
        return;
    }
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(b.in_line(&name, ttl(LONG), keep).await);
    held(c.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    // Open, b first: c watches for its turn, and b gives up its place instead of taking it.
    let turn = c
        .lock
        .watch_turn(&name, &c.owner)
        .await
        .expect("watch_turn")
        .expect("a turn to watch");
    b.leave_line(&name).await;
    tokio::time::timeout(PATIENCE, turn)
        .await
        .expect("the next in line is woken when the first leaves an open name");
    acquired(c.in_line(&name, ttl(LONG), keep).await);
}

/// acquire with wait: a waiter is handed the lock when the holder's lease expires.
pub async fn waiter_wakes_on_expiry(s: &Suite) {
    if !s.requires("expiry", s.capabilities().expiry) {
        return;
    }
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(SHORT)).await);
    let got = b.wait(&name, ttl(LONG), Wait::For(PATIENCE)).await;
    assert!(
        matches!(&got, Acquisition::Acquired(l) if l.owner == b.owner),
        "{got:?}"
    );
}

/// acquire with wait: a wait that runs out says timed out, with the holder.
pub async fn wait_runs_out_with_the_holder(s: &Suite) {
    let (a, b) = (s.client().await, s.client().await);
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    let got = b
        .wait(&name, ttl(LONG), Wait::For(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(&got, Acquisition::TimedOut(h) if h.owner == a.owner),
        "{got:?}"
    );
}

/// line: waiters in line are served first come, first served; the one served retries idempotently.
pub async fn line_serves_waiters_in_order(s: &Suite) {
    if !s.requires("fair_line", s.capabilities().fair_line) {
        return;
    }
    let [a, b, c, d] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    for w in [&b, &c, &d] {
        assert_eq!(held(w.in_line(&name, ttl(LONG), keep).await).owner, a.owner);
    }
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    behind(d.in_line(&name, ttl(LONG), keep).await, LONG);
    behind(c.in_line(&name, ttl(LONG), keep).await, LONG);
    assert_eq!(
        d.inspect(&name).await,
        LockState::Open,
        "nothing but places changed"
    );
    let lease = acquired(b.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(lease.owner, b.owner);
    let again = acquired(b.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(
        again.token, lease.token,
        "a retry by the holder keeps its token"
    );
    assert_eq!(held(c.in_line(&name, ttl(LONG), keep).await).owner, b.owner);
    assert_eq!(b.release(&name).await, ReleaseOutcome::Released);
    behind(d.in_line(&name, ttl(LONG), keep).await, LONG);
    let next = acquired(c.in_line(&name, ttl(LONG), keep).await);
    assert!(next.token > lease.token);
    assert_eq!(c.release(&name).await, ReleaseOutcome::Released);
    acquired(d.in_line(&name, ttl(LONG), keep).await);
}

/// line: a waiter that stops asking loses its place after its patience, and rejoins at the back.
pub async fn line_place_lapses_after_patience(s: &Suite) {
    if !s.requires("fair_line", s.capabilities().fair_line) {
        return;
    }
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(
        b.in_line(&name, ttl(LONG), Duration::from_millis(RENEWABLE))
            .await,
    );
    held(
        c.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    behind(
        c.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
        RENEWABLE,
    );
    // b does not ask again in time: its place is gone `RENEWABLE` after it last asked, which
    // was before; asking now, it joins at the back, behind c.
    sleep_ms(RENEWABLE + 50).await;
    behind(
        b.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
        LONG,
    );
    let lease = acquired(
        c.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
            .await,
    );
    assert_eq!(lease.owner, c.owner);
}

/// line: a waiter that leaves gives up its place at once, and leaving without a place changes nothing.
pub async fn leave_line_moves_the_next_up(s: &Suite) {
    if !s.requires("fair_line", s.capabilities().fair_line) {
        return;
    }
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(b.in_line(&name, ttl(LONG), keep).await);
    held(c.in_line(&name, ttl(LONG), keep).await);
    b.leave_line(&name).await;
    b.leave_line(&name).await;
    a.leave_line(&name).await;
    assert_eq!(
        locked(a.inspect(&name).await).owner,
        a.owner,
        "leaving changes no lease"
    );
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    acquired(c.in_line(&name, ttl(LONG), keep).await);
}

/// line: a single try does not stand in line, and takes an open name even while others wait.
pub async fn try_acquire_does_not_wait_in_line(s: &Suite) {
    if !s.requires("fair_line", s.capabilities().fair_line) {
        return;
    }
    let [a, b, c] = s.clients().await;
    let name = s.name("n");
    let keep = Duration::from_millis(LONG);
    acquired(a.acquire(&name, ttl(LONG)).await);
    held(b.in_line(&name, ttl(LONG), keep).await);
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    acquired(c.acquire(&name, ttl(LONG)).await);
    assert_eq!(held(b.in_line(&name, ttl(LONG), keep).await).owner, c.owner);
    assert_eq!(c.release(&name).await, ReleaseOutcome::Released);
    acquired(b.in_line(&name, ttl(LONG), keep).await);
}

/// acquire with wait: waiters are handed the lock in the order they came.
pub async fn waiters_are_served_in_order(s: &Suite) {
    if !s.requires("fair_line", s.capabilities().fair_line) {
        return;
    }
    let a = s.client().await;
    let name = s.name("n");
    acquired(a.acquire(&name, ttl(LONG)).await);
    let served = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    let mut came = Vec::new();
    for _ in 0..4 {
        let w = s.client().await;
        // Joins the line now, in this order; the wait below keeps the same place.
        held(
            w.in_line(&name, ttl(LONG), Duration::from_millis(LONG))
                .await,
        );
        came.push(w.owner.clone());
        let (name, served) = (name.clone(), served.clone());
        waiters.push(tokio::spawn(async move {
            let got = w.wait(&name, ttl(LONG), Wait::For(PATIENCE)).await;
            assert!(matches!(&got, Acquisition::Acquired(_)), "{got:?}");
            served.lock().unwrap().push(w.owner.clone());
            assert_eq!(w.release(&name).await, ReleaseOutcome::Released);
        }));
    }
    assert_eq!(a.release(&name).await, ReleaseOutcome::Released);
    for w in waiters {
        w.await.expect("waiter");
    }
    assert_eq!(*served.lock().unwrap(), came);
}

/// guard: renews in the background, so the lease outlives its ttl while held.
pub async fn guard_renews_past_ttl(s: &Suite) {
    if !s.requires("expiry", s.capabilities().expiry) {
        return;
    }
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, RENEWABLE).await;
    sleep_ms(RENEWABLE * 5 / 2).await;
    assert_eq!(guard.loss(), None);
    let holder = locked(other.inspect(&name).await);
    assert_eq!(holder.token, guard.token());
    assert_eq!(
        guard.release().await.expect("release"),
        ReleaseOutcome::Released
    );
    assert_eq!(other.inspect(&name).await, LockState::Open);
}

/// guard: says at once, with a reason, when its lease is force released from outside.
pub async fn guard_tells_when_lost(s: &Suite) {
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, RENEWABLE).await;
    assert_eq!(other.force_release(&name).await, ReleaseOutcome::Released);
    acquired(other.acquire(&name, ttl(LONG)).await);
    let reason = tokio::time::timeout(PATIENCE, guard.lost())
        .await
        .expect("the guard reports the loss");
    assert_eq!(reason, LossReason::Refused);
    assert_eq!(
        guard.release().await.expect("release"),
        ReleaseOutcome::NotOwner
    );
}

/// guard: dropping it releases the lease (best effort), so the name opens without its ttl.
pub async fn guard_drop_releases(s: &Suite) {
    let (lock, other) = (s.handle().await, s.client().await);
    let name = s.name("n");
    let guard = held_guard(lock, &name, LONG).await;
    drop(guard);
    let got = other.wait(&name, ttl(LONG), Wait::For(PATIENCE)).await;
    assert!(matches!(&got, Acquisition::Acquired(_)), "{got:?}");
}

/// racing processes: W processes × M cycles never overlap; tokens rise in order of entry; a shared counter is exact.
pub async fn cross_process_exclusion(s: &Suite) {
    if !s.requires("cross_process", s.capabilities().cross_process) {
        return;
    }
    crate::cross_process::check(s).await;
}

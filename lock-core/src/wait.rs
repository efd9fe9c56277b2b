//! Acquire with wait: [`Wait`], [`Acquisition`] and [`acquire`].

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::metrics;
use crate::raw::InLineOutcome;
use crate::{AcquireOutcome, Claim, Error, Holder, Lease, Lock};

/// How long an acquisition may wait for another owner's lease to end.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wait {
    /// One try.
    No,
    /// Until this much time has passed.
    For(Duration),
    /// As long as it takes (as `flock(1)` does).
    #[default]
    Forever,
}

/// How an acquisition that may wait ([`acquire`], [`Guard::acquire`](crate::Guard::acquire))
/// ended: with what it acquired, or with who holds the name. The backend calls it made on the
/// way answered [`AcquireOutcome`] (a plain try) or
/// [`InLineOutcome`](crate::raw::InLineOutcome) (a try in line).
#[non_exhaustive]
#[derive(Debug)]
pub enum Acquisition<T> {
    /// Acquired: a [`Lease`], or a [`Guard`](crate::Guard) that renews it.
    Acquired(T),
    /// [`Wait::No`] and another owner holds the lease.
    Held(Holder),
    /// The wait ran out; the holder as last seen.
    TimedOut(Holder),
}

impl<T> Acquisition<T> {
    /// The acquired value, if any.
    pub fn acquired(self) -> Option<T> {
        match self {
            Self::Acquired(t) => Some(t),
            _ => None,
        }
    }

    /// The acquired value, or why there is none: for a `match` that names every case.
    pub fn into_result(self) -> Result<T, NotAcquired> {
        match self {
            Self::Acquired(t) => Ok(t),
            Self::Held(holder) => Err(NotAcquired {
                holder,
                timed_out: false,
            }),
            Self::TimedOut(holder) => Err(NotAcquired {
                holder,
                timed_out: true,
            }),
        }
    }
}

/// Why an acquisition got nothing ([`Acquisition::into_result`]).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAcquired {
    /// Who holds the name (as last seen, when a wait ran out).
    pub holder: Holder,
    /// A wait ran out ([`Acquisition::TimedOut`]); else a single try found it held
    /// ([`Acquisition::Held`]).
    pub timed_out: bool,
}

/// Below this, a waiter without change notification polls no faster.
const MIN_BACKOFF: Duration = Duration::from_millis(2);
/// Above this, a waiter without change notification polls no slower.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// How long a waiter's place in line is kept after it last asked (the `patience` that
/// [`acquire`] passes to [`Lock::try_acquire_in_line`]): how long a waiter that died holds up
/// the waiters behind it, at most. Well under a second, so that a lock whose holder died is
/// free again within its ttl + 1 s even when the waiter first in line died too.
pub const LINE_PATIENCE: Duration = Duration::from_millis(800);

/// `patience` as a backend keeps it: in whole milliseconds, from 1 ms to a year (365 days),
/// values outside taken as the nearest bound, as [`Lock::try_acquire_in_line`] says.
pub fn patience_millis(patience: Duration) -> u64 {
    const YEAR_MS: u128 = 365 * 86_400_000;
    patience.as_millis().clamp(1, YEAR_MS) as u64
}
/// A waiter in line asks again at least this often, so that its place is kept even when
/// nothing wakes it (four chances within [`LINE_PATIENCE`]; a backend may rewrite a place
/// only once less than half the patience is left, which still leaves 200 ms to spare).
const KEEP_PLACE_EVERY: Duration = Duration::from_millis(200);

/// Tries to take `claim` (its name, for its owner, of its kind), waiting as `wait` allows.
///
/// A waiter watches the name before each try (see [`Lock::watch`]), so it learns of a release
/// promptly on backends with change notification; it learns of an expiry by sleeping until
/// the holder's time left runs out. Without notification it polls with a short, jittered
/// backoff (2 ms doubling to 100 ms), never a fixed long poll, and never past the holder's
/// expiry.
///
/// On a backend with [`Capabilities::fair_line`](crate::Capabilities::fair_line), a wait
/// (anything but [`Wait::No`]) stands in the name's line: waiters are served first come, first
/// served ([`Lock::try_acquire_in_line`]), each asking again at least every 200 ms to keep its
/// place, and when the first place ahead would lapse. A wait that runs out while the name is open but others stand ahead makes one last
/// plain try, so `TimedOut` always names a holder; either way it leaves the line. [`Wait::No`]
/// is one plain [`Lock::try_acquire`], which does not queue.
///
/// Cancel-safe: dropping the future leaves at most a lease that nobody renews, which lapses
/// after `ttl`, and a place in line, which lapses after [`LINE_PATIENCE`].
///
/// # Errors
/// [`InvalidInput::KindUnsupported`](crate::InvalidInput::KindUnsupported) before anything is
/// sent for a kind the backend does not offer ([`Capabilities::check`](crate::Capabilities::check));
/// otherwise the first backend error ends the wait and is returned.
pub async fn acquire(
    lock: &dyn Lock,
    claim: Claim<'_>,
    wait: Wait,
) -> Result<Acquisition<Lease>, Error> {
    Ok(acquire_timed(lock, claim, wait, None).await?.0)
}

/// What [`acquire_timed`] calls as a wait begins, with the holder (`None`: open, others ahead).
pub(crate) type SayWaiting = dyn Fn(Option<&Holder>) + Send + Sync;

/// [`acquire`], also giving the instant the successful try was sent: the lease is live at
/// least until that instant + ttl; and calling `on_waiting` once, as the wait begins.
pub(crate) async fn acquire_timed(
    lock: &dyn Lock,
    claim: Claim<'_>,
    wait: Wait,
    on_waiting: Option<&SayWaiting>,
) -> Result<(Acquisition<Lease>, Instant), Error> {
    let (backend, kind) = (lock.backend_name(), claim.kind);
    let span =
        tracing::debug_span!("lock.acquire", backend, name = %claim.name, kind = kind.as_str());
    let started = Instant::now();
    let result = wait_for(lock, claim, wait, on_waiting)
        .instrument(span)
        .await;
    let outcome = match &result {
        Ok((Acquisition::Acquired(_), _)) => metrics::Outcome::Acquired,
        Ok((Acquisition::Held(_), _)) => metrics::Outcome::Held,
        Ok((Acquisition::TimedOut(_), _)) => metrics::Outcome::TimedOut,
        Err(_) => metrics::Outcome::Error,
    };
    metrics::acquisition(backend, kind, outcome, started.elapsed());
    result
}

/// [`acquire_timed`] without its accounting.
async fn wait_for(
    lock: &dyn Lock,
    claim: Claim<'_>,
    wait: Wait,
    mut on_waiting: Option<&SayWaiting>,
) -> Result<(Acquisition<Lease>, Instant), Error> {
    let capabilities = lock.capabilities();
    capabilities.check(claim.kind)?;
    let claim = claim.with_kind(claim.kind);
    let (name, owner) = (claim.name, claim.owner);
    let deadline = match wait {
        Wait::For(d) => Some(Instant::now() + d),
        Wait::No | Wait::Forever => None,
    };
    let in_line = wait != Wait::No && capabilities.fair_line;
    let mut backoff = MIN_BACKOFF;
    // In the `lock_waiters` gauge from the first sleep until this returns.
    let mut waiting = None;
    loop {
        let change = match wait {
            Wait::No => None,
            _ if in_line => lock.watch_turn(name, owner).await?,
            _ => lock.watch(name).await?,
        };
        let sent = Instant::now();
        // `holder` is `None` when the name is open but others stand ahead in line; then
        // `first_lapses` is when the first of them loses its place unless it asks again.
        let mut first_lapses = None;
        let outcome = if in_line {
            lock.try_acquire_in_line(claim, LINE_PATIENCE).await?
        } else {
            lock.try_acquire(claim).await?.into()
        };
        let holder = match outcome {
            InLineOutcome::Acquired(lease) => return Ok((Acquisition::Acquired(lease), sent)),
            InLineOutcome::Held(holder) => Some(holder),
            InLineOutcome::Behind { first_kept_for } => {
                first_lapses = Some(sent + first_kept_for + Duration::from_millis(1));
                None
            }
        };
        if wait == Wait::No {
            let holder = holder.expect("a plain try names the holder");
            return Ok((Acquisition::Held(holder), sent));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return time_out(lock, claim, holder, in_line, sent).await;
        }
        if waiting.is_none() {
            waiting = Some(metrics::Waiting::start(lock.backend_name()));
        }
        if let Some(say) = on_waiting.take() {
            say(holder.as_ref());
        }
        // Sleep until the holder's lease runs out (plus a millisecond, as backends count in
        // milliseconds), a change, the deadline, or the next poll, whichever comes first.
        let mut wake = holder
            .and_then(|h| h.expires_in)
            .map(|left| sent + left + Duration::from_millis(1));
        if change.is_none() {
            let poll = now + jitter(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            wake = Some(wake.map_or(poll, |w| w.min(poll)));
        }
        if in_line {
            let keep =
                first_lapses.map_or(now + KEEP_PLACE_EVERY, |f| f.min(now + KEEP_PLACE_EVERY));
            wake = Some(wake.map_or(keep, |w| w.min(keep)));
        }
        if let Some(d) = deadline {
            wake = Some(wake.map_or(d, |w| w.min(d)));
        }
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        match change {
            Some(change) => {
                tokio::select! {
                    () = change => {}
                    () = sleep => {}
                }
            }
            None => sleep.await,
        }
    }
}

/// The end of a wait that ran out: the holder as last seen, or, when the name was open with
/// others ahead in line, one last plain try; and out of the line.
async fn time_out(
    lock: &dyn Lock,
    claim: Claim<'_>,
    holder: Option<Holder>,
    in_line: bool,
    sent: Instant,
) -> Result<(Acquisition<Lease>, Instant), Error> {
    let (outcome, sent) = match holder {
        Some(holder) => (Acquisition::TimedOut(holder), sent),
        None => {
            let sent = Instant::now();
            match lock.try_acquire(claim).await? {
                AcquireOutcome::Acquired(lease) => (Acquisition::Acquired(lease), sent),
                AcquireOutcome::Held(holder) => (Acquisition::TimedOut(holder), sent),
            }
        }
    };
    if in_line && let Err(e) = lock.leave_line(claim.name, claim.owner).await {
        tracing::warn!(name = %claim.name, error = %e, "leaving the line failed; the place lapses by itself");
    }
    Ok((outcome, sent))
}

/// A duration between half and all of `d`, so that pollers do not march in step.
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let r = getrandom::fill(&mut byte).map_or(255, |()| byte[0]);
    d / 2 + d / 2 * u32::from(r) / 255
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::MemoryLock;
    use crate::{Claim, LockName, OwnerId, Ttl};

    fn name() -> LockName {
        LockName::new("job").unwrap()
    }

    #[test]
    fn patience_is_whole_milliseconds_from_one_to_a_year() {
        let year = 365 * 86_400_000;
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_micros(999), 1),
            (Duration::from_micros(1_500), 1),
            (LINE_PATIENCE, 800),
            (Duration::from_millis(year), year),
            (Duration::from_millis(year + 1), year),
            (Duration::MAX, year),
        ];
        for (patience, ms) in cases {
            assert_eq!(patience_millis(patience), ms, "{patience:?}");
        }
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j <= Duration::from_millis(100));
        }
    }

    #[tokio::test]
    async fn no_wait_says_held() {
        let lock = MemoryLock::new();
        let (a, b) = (OwnerId::random(), OwnerId::random());
        let ttl = Ttl::from_millis(10_000).unwrap();
        assert!(matches!(
            acquire(&lock, Claim::new(&name(), &a, ttl), Wait::No)
                .await
                .unwrap(),
            Acquisition::Acquired(_)
        ));
        match acquire(&lock, Claim::new(&name(), &b, ttl), Wait::No)
            .await
            .unwrap()
        {
            Acquisition::Held(h) => assert_eq!(h.owner, a),
            other => panic!("expected held, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_runs_out_with_the_holder() {
        let lock = MemoryLock::new();
        let (a, b) = (OwnerId::random(), OwnerId::random());
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        acquire(&lock, Claim::new(&name(), &a, ttl), Wait::No)
            .await
            .unwrap();
        let got = acquire(
            &lock,
            Claim::new(&name(), &b, ttl),
            Wait::For(Duration::from_millis(200)),
        )
        .await
        .unwrap();
        assert!(matches!(got, Acquisition::TimedOut(h) if h.owner == a));
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_it_is_released() {
        let lock = Arc::new(MemoryLock::new());
        let (a, b) = (OwnerId::random(), OwnerId::random());
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        acquire(&*lock, Claim::new(&name(), &a, ttl), Wait::No)
            .await
            .unwrap();
        let waiter = {
            let lock = lock.clone();
            let b = b.clone();
            tokio::spawn(async move {
                acquire(&*lock, Claim::new(&name(), &b, ttl), Wait::Forever).await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the waiter must wait while a holds");
        lock.release(&name(), &a).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release, long before the hour-long ttl")
            .unwrap()
            .unwrap();
        assert!(matches!(got, Acquisition::Acquired(l) if l.owner == b));
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_behind_others_makes_one_last_plain_try_and_leaves() {
        let lock = MemoryLock::new();
        let (a, b, c) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        let long = Duration::from_secs(3_600);
        acquire(&lock, Claim::new(&name(), &a, ttl), Wait::No)
            .await
            .unwrap();
        let c_first = lock
            .try_acquire_in_line(Claim::new(&name(), &c, ttl), long)
            .await;
        assert!(matches!(c_first.unwrap(), InLineOutcome::Held(_)));
        lock.release(&name(), &a).await.unwrap();
        // Open, but c stands ahead: b is behind until its wait runs out, then tries once.
        let wait = Wait::For(Duration::from_millis(300));
        let got = acquire(&lock, Claim::new(&name(), &b, ttl), wait)
            .await
            .unwrap();
        assert!(matches!(got, Acquisition::Acquired(l) if l.owner == b));
        lock.release(&name(), &b).await.unwrap();
        // b left the line; c is first.
        let c_next = lock
            .try_acquire_in_line(Claim::new(&name(), &c, ttl), long)
            .await;
        assert!(matches!(c_next.unwrap(), InLineOutcome::Acquired(_)));
    }

    #[tokio::test]
    async fn a_waiter_keeps_its_place_past_the_patience() {
        let lock = Arc::new(MemoryLock::new());
        let (a, b, c) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        acquire(&*lock, Claim::new(&name(), &a, ttl), Wait::No)
            .await
            .unwrap();
        let waiter = {
            let (lock, b) = (lock.clone(), b.clone());
            tokio::spawn(async move {
                acquire(&*lock, Claim::new(&name(), &b, ttl), Wait::Forever).await
            })
        };
        // Nothing wakes b for longer than a place is kept without asking: it asks anyway.
        tokio::time::sleep(LINE_PATIENCE + Duration::from_millis(500)).await;
        // c keeps its place for an hour: had b's lapsed, b would now stand behind c.
        let hour = Duration::from_secs(3_600);
        let c_try = lock
            .try_acquire_in_line(Claim::new(&name(), &c, ttl), hour)
            .await;
        assert!(matches!(c_try.unwrap(), InLineOutcome::Held(_)));
        lock.release(&name(), &a).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("b, first in line, is handed the lock")
            .unwrap()
            .unwrap();
        assert!(
            matches!(got, Acquisition::Acquired(l) if l.owner == b),
            "b was first"
        );
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lock_when_it_expires() {
        let lock = MemoryLock::new();
        let (a, b) = (OwnerId::random(), OwnerId::random());
        let short = Ttl::from_millis(150).unwrap();
        acquire(&lock, Claim::new(&name(), &a, short), Wait::No)
            .await
            .unwrap();
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            acquire(&lock, Claim::new(&name(), &b, short), Wait::Forever),
        )
        .await
        .expect("woken by the expiry")
        .unwrap();
        assert!(matches!(got, Acquisition::Acquired(l) if l.owner == b));
    }
}

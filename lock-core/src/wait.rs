//! Acquire with wait: [`Wait`], [`Acquisition`] and [`acquire`].

use std::time::Duration;

use tokio::time::Instant;

use crate::{AcquireOutcome, Error, Holder, Lease, Lock, LockName, OwnerId, Ttl};

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

/// The outcome of an acquisition that may wait.
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
}

/// Below this, a waiter without change notification polls no faster.
const MIN_BACKOFF: Duration = Duration::from_millis(2);
/// Above this, a waiter without change notification polls no slower.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Tries to take `name` for `owner`, waiting as `wait` allows.
///
/// A waiter watches the name before each try (see [`Lock::watch`]), so it learns of a release
/// promptly on backends with change notification; it learns of an expiry by sleeping until
/// the holder's time left runs out. Without notification it polls with a short, jittered
/// backoff (2 ms doubling to 100 ms), never a fixed long poll, and never past the holder's
/// expiry.
///
/// Cancel-safe: dropping the future leaves at most a lease that nobody renews, which lapses
/// after `ttl`.
///
/// # Errors
/// The first backend error ends the wait and is returned.
pub async fn acquire(
    lock: &dyn Lock,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
    wait: Wait,
) -> Result<Acquisition<Lease>, Error> {
    Ok(acquire_timed(lock, name, owner, ttl, wait).await?.0)
}

/// [`acquire`], also giving the instant the successful try was sent: the lease is live at
/// least until that instant + ttl.
pub(crate) async fn acquire_timed(
    lock: &dyn Lock,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
    wait: Wait,
) -> Result<(Acquisition<Lease>, Instant), Error> {
    let deadline = match wait {
        Wait::For(d) => Some(Instant::now() + d),
        Wait::No | Wait::Forever => None,
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        let change = match wait {
            Wait::No => None,
            _ => lock.watch(name).await?,
        };
        let sent = Instant::now();
        let holder = match lock.try_acquire(name, owner, ttl).await? {
            AcquireOutcome::Acquired(lease) => return Ok((Acquisition::Acquired(lease), sent)),
            AcquireOutcome::Held(holder) => holder,
        };
        if wait == Wait::No {
            return Ok((Acquisition::Held(holder), sent));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Ok((Acquisition::TimedOut(holder), sent));
        }
        // Sleep until the holder's lease runs out (plus a millisecond, as backends count in
        // milliseconds), a change, the deadline, or the next poll, whichever comes first.
        let mut wake = holder
            .expires_in
            .map(|left| sent + left + Duration::from_millis(1));
        if change.is_none() {
            let poll = now + jitter(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            wake = Some(wake.map_or(poll, |w| w.min(poll)));
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

    fn name() -> LockName {
        LockName::new("job").unwrap()
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
            acquire(&lock, &name(), &a, ttl, Wait::No).await.unwrap(),
            Acquisition::Acquired(_)
        ));
        match acquire(&lock, &name(), &b, ttl, Wait::No).await.unwrap() {
            Acquisition::Held(h) => assert_eq!(h.owner, a),
            other => panic!("expected held, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_runs_out_with_the_holder() {
        let lock = MemoryLock::new();
        let (a, b) = (OwnerId::random(), OwnerId::random());
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        acquire(&lock, &name(), &a, ttl, Wait::No).await.unwrap();
        let got = acquire(
            &lock,
            &name(),
            &b,
            ttl,
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
        acquire(&*lock, &name(), &a, ttl, Wait::No).await.unwrap();
        let waiter = {
            let lock = lock.clone();
            let b = b.clone();
            tokio::spawn(async move { acquire(&*lock, &name(), &b, ttl, Wait::Forever).await })
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
    async fn a_waiter_gets_the_lock_when_it_expires() {
        let lock = MemoryLock::new();
        let (a, b) = (OwnerId::random(), OwnerId::random());
        let short = Ttl::from_millis(150).unwrap();
        acquire(&lock, &name(), &a, short, Wait::No).await.unwrap();
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            acquire(&lock, &name(), &b, short, Wait::Forever),
        )
        .await
        .expect("woken by the expiry")
        .unwrap();
        assert!(matches!(got, Acquisition::Acquired(l) if l.owner == b));
    }
}

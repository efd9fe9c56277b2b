//! Instants that `lock` and its supervisor share (`CLOCK_MONOTONIC`, counted alike by every
//! process of the machine), and the margins kept before a lease's end.

use std::time::Duration;

use lock::Ttl;
use nix::time::{ClockId, clock_gettime};

use super::message::Deadline;

/// Now on `CLOCK_MONOTONIC`.
pub fn now() -> Deadline {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    Deadline(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
}

impl Deadline {
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }

    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(d.as_nanos().min(u64::MAX as u128) as u64),
        )
    }

    /// How long from `earlier` to this (zero if this came first).
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// A tokio instant as a deadline, never later than it is: the clock is read before the
    /// instant is compared with now.
    pub fn from_instant(at: tokio::time::Instant) -> Self {
        let mono = now();
        let here = tokio::time::Instant::now();
        if at >= here {
            mono.plus(at - here)
        } else {
            mono.minus(here - at)
        }
    }
}

/// The most grace between TERM and KILL a lease of `ttl` allows: a third of it, so that a
/// command stopped for want of a renewal is gone before the lease can lapse.
pub fn max_grace(ttl: Ttl) -> Duration {
    ttl.duration() / 3
}

/// How long before the lease's `valid_until` the KILL lands: a twentieth of the ttl, at most a
/// second, for the signal's delivery and the command's end.
pub fn margin(ttl: Ttl) -> Duration {
    (ttl.duration() / 20).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_from_an_instant_is_never_late() {
        let before = now();
        let at = tokio::time::Instant::now() + Duration::from_secs(5);
        let deadline = Deadline::from_instant(at);
        let after = now();
        assert!(deadline <= after.plus(Duration::from_secs(5)));
        assert!(
            deadline
                >= before
                    .plus(Duration::from_secs(5))
                    .minus(Duration::from_millis(50))
        );
    }

    #[test]
    fn grace_and_margin_fit_inside_the_ttl() {
        for ms in [1, 30, 3_000, 30_000, 86_400_000] {
            let ttl = Ttl::from_millis(ms).unwrap();
            assert!(max_grace(ttl) + margin(ttl) < ttl.duration(), "{ms} ms");
            assert!(margin(ttl) <= Duration::from_secs(1));
        }
    }
}

//! Time as every process on the machine sees it: `CLOCK_MONOTONIC` in nanoseconds.

use std::sync::OnceLock;

use nix::time::{ClockId, clock_gettime};
use tokio::time::Instant;

/// Nanoseconds on `CLOCK_MONOTONIC`, which all processes of a machine share.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// A tokio instant (tokio's clock is `CLOCK_MONOTONIC` too) on the shared clock.
///
/// `Instant` hides its raw value, so the two clocks are paired once, from the closest of
/// many readings taken back to back; both run on the same clock, so the pairing stays exact
/// (to within that closest gap, well under a microsecond) for the life of the process.
/// Pairing at each call instead would be off by however long the process was descheduled
/// between the two readings.
pub fn instant_ns(at: Instant) -> u64 {
    static BASE: OnceLock<(std::time::Instant, u64)> = OnceLock::new();
    let (base, base_ns) = *BASE.get_or_init(|| {
        (0..100)
            .map(|_| {
                let before = now_ns();
                let instant = std::time::Instant::now();
                let after = now_ns();
                (after - before, instant, before)
            })
            .min_by_key(|&(gap, ..)| gap)
            .map(|(_, instant, before)| (instant, before))
            .expect("readings")
    });
    let at = at.into_std();
    if at >= base {
        base_ns + (at - base).as_nanos() as u64
    } else {
        base_ns.saturating_sub((base - at).as_nanos() as u64)
    }
}

/// A small xorshift generator: random hold times and delays, no cryptography needed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `seed`; zero is replaced, since xorshift never leaves it.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Seeded from the process id and the clock.
    pub fn from_entropy() -> Self {
        Self::new(now_ns() ^ (u64::from(std::process::id()) << 32))
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        if n == 0 { 0 } else { self.0 % n }
    }
}

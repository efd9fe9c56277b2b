//! Time as every process on the machine sees it: `CLOCK_MONOTONIC` in nanoseconds.

use nix::time::{ClockId, clock_gettime};
use tokio::time::Instant;

/// Nanoseconds on `CLOCK_MONOTONIC`, which all processes of a machine share.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// A tokio instant (tokio's clock is `CLOCK_MONOTONIC` too) on the shared clock.
pub fn instant_ns(at: Instant) -> u64 {
    let (now, ns) = (Instant::now(), now_ns());
    if at >= now {
        ns + (at - now).as_nanos() as u64
    } else {
        ns.saturating_sub((now - at).as_nanos() as u64)
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

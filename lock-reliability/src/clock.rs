//! Time as every process on the machine sees it: `CLOCK_MONOTONIC` in nanoseconds; and a
//! watch on the wall clock, which the servers time leases by.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use tokio::time::Instant;

/// Nanoseconds on `CLOCK_MONOTONIC`, which all processes of a machine share.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// `CLOCK_REALTIME` minus `CLOCK_MONOTONIC` in nanoseconds, with the monotonic instant it was
/// read at; `None` when the process was descheduled between the readings (over 50 µs).
fn wall_offset() -> Option<(u64, i128)> {
    let before = now_ns();
    let wall = clock_gettime(ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME");
    let after = now_ns();
    if after - before > 50_000 {
        return None;
    }
    let wall = i128::from(wall.tv_sec()) * 1_000_000_000 + i128::from(wall.tv_nsec());
    let at = before + (after - before) / 2;
    Some((at, wall - i128::from(at)))
}

/// A step of the wall clock against the monotonic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// When it was seen, on the shared monotonic clock.
    pub at: u64,
    /// By how much the wall clock moved beyond the monotonic one (negative: back).
    pub ns: i64,
}

/// Watches the wall clock (`CLOCK_REALTIME`: what Redis, Postgres and lock files time leases
/// by) against `CLOCK_MONOTONIC` (what the workers, their guards and the checker use), every
/// millisecond, and records every step of over a millisecond between the two. Such a step
/// moves every lease's end on the servers and nowhere else: the checker's judgements assume
/// there is none, so the runner reports them.
#[derive(Debug)]
pub struct ClockWatch {
    steps: Arc<Mutex<Vec<Step>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Steps smaller than this are reading noise.
const STEP: i128 = 1_000_000;

impl ClockWatch {
    /// Starts watching.
    pub fn start() -> Self {
        let steps = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (steps, stop) = (steps.clone(), stop.clone());
            move || {
                let mut last = None;
                while !stop.load(Ordering::Relaxed) {
                    if let Some((at, offset)) = wall_offset() {
                        let moved: i128 = last.map_or(0, |l| offset - l);
                        if moved.abs() > STEP {
                            let ns = moved.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                            let step = Step { at, ns: ns as i64 };
                            steps.lock().expect("the steps").push(step);
                        }
                        // From one reading to the next: a slew (at most 0.5 ms a second) never
                        // adds up to a step.
                        last = Some(offset);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        Self {
            steps,
            stop,
            thread: Some(thread),
        }
    }

    /// The steps seen between `from` and `to`.
    pub fn steps_between(&self, from: u64, to: u64) -> Vec<Step> {
        let steps = self.steps.lock().expect("the steps");
        steps
            .iter()
            .filter(|s| (from..=to).contains(&s.at))
            .copied()
            .collect()
    }
}

impl Drop for ClockWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

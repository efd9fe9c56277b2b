//! The interleaving harness: every side (a raw floor, our lock, …) runs one cycle at a time in
//! rounds of a few hundred cycles, floor, ours, floor, ours…, after a warm-up, so that the
//! sides compared share the same moments of a noisy machine.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use serde::Serialize;

use crate::Res;
use crate::stats::{Summary, median};

/// A boxed future, as a [`Side`] returns for each cycle.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One thing to measure: a cycle (acquire + release, or the floor's equivalent) run again
/// and again.
pub trait Side: Send {
    /// What it is, for the table.
    fn label(&self) -> String;
    /// One full cycle; an error ends the benchmark.
    fn cycle(&mut self) -> BoxFuture<'_, Res<()>>;
}

/// How many cycles, in how many rounds.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Plan {
    /// Cycles per side before measuring.
    pub warmup: usize,
    /// Rounds.
    pub rounds: usize,
    /// Cycles per side per round.
    pub per_round: usize,
}

/// One side's cycle times over the measured rounds.
pub struct Measured {
    /// The side's label.
    pub label: String,
    /// Every measured cycle, in nanoseconds.
    pub nanos: Vec<u64>,
    /// Mean cycle time of each round, in nanoseconds.
    pub round_means: Vec<f64>,
}

impl Measured {
    /// p50, p99, cycles/s over all rounds.
    pub fn summary(&self) -> Summary {
        Summary::of_nanos(&self.nanos)
    }

    /// The median over rounds of (this side's round mean / `base`'s round mean): above 1,
    /// this side is slower.
    pub fn ratio_to(&self, base: &Measured) -> f64 {
        let ratios: Vec<f64> = self
            .round_means
            .iter()
            .zip(&base.round_means)
            .filter(|(_, b)| **b > 0.0)
            .map(|(a, b)| a / b)
            .collect();
        median(&ratios)
    }
}

/// Warms every side up, then runs `plan.rounds` rounds in which each side in turn runs
/// `plan.per_round` cycles.
pub async fn interleave(sides: &mut [Box<dyn Side>], plan: Plan) -> Res<Vec<Measured>> {
    for side in sides.iter_mut() {
        for _ in 0..plan.warmup {
            side.cycle().await?;
        }
    }
    let mut measured: Vec<Measured> = sides
        .iter()
        .map(|s| Measured {
            label: s.label(),
            nanos: Vec::with_capacity(plan.rounds * plan.per_round),
            round_means: Vec::with_capacity(plan.rounds),
        })
        .collect();
    for _ in 0..plan.rounds {
        for (side, out) in sides.iter_mut().zip(measured.iter_mut()) {
            let mut sum = 0u64;
            for _ in 0..plan.per_round {
                let start = Instant::now();
                side.cycle().await?;
                let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                out.nanos.push(nanos);
                sum += nanos;
            }
            out.round_means
                .push(sum as f64 / plan.per_round.max(1) as f64);
        }
    }
    Ok(measured)
}

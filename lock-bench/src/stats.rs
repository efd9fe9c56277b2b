//! Figures from samples: percentiles, medians, cycles per second, and the median of per-round
//! ratios that compares two sides measured in the same rounds.

use serde::{Deserialize, Serialize};

/// What one side did over all measured rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Cycles measured (warm-up not counted).
    pub cycles: usize,
    /// Median cycle, µs.
    pub p50_us: f64,
    /// 99th-percentile cycle, µs.
    pub p99_us: f64,
    /// Mean cycle, µs.
    pub mean_us: f64,
    /// Cycles per second over the measured time.
    pub cycles_per_s: f64,
}

impl Summary {
    /// The summary of cycle times in nanoseconds.
    pub fn of_nanos(samples: &[u64]) -> Self {
        let total: u64 = samples.iter().sum();
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let cycles = samples.len();
        Self {
            cycles,
            p50_us: percentile(&sorted, 50.0) / 1e3,
            p99_us: percentile(&sorted, 99.0) / 1e3,
            mean_us: if cycles == 0 {
                0.0
            } else {
                total as f64 / cycles as f64 / 1e3
            },
            cycles_per_s: if total == 0 {
                0.0
            } else {
                cycles as f64 * 1e9 / total as f64
            },
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted samples; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Mean, p50, p99 and maximum of durations in nanoseconds, in µs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Spread {
    /// How many.
    pub count: usize,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// Maximum, µs.
    pub max_us: f64,
}

impl Spread {
    /// The spread of durations in nanoseconds.
    pub fn of_nanos(samples: &[u64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let count = sorted.len();
        Self {
            count,
            mean_us: if count == 0 {
                0.0
            } else {
                sorted.iter().sum::<u64>() as f64 / count as f64 / 1e3
            },
            p50_us: percentile(&sorted, 50.0) / 1e3,
            p99_us: percentile(&sorted, 99.0) / 1e3,
            max_us: sorted.last().copied().unwrap_or(0) as f64 / 1e3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn summaries_count_cycles_per_second() {
        let s = Summary::of_nanos(&[1_000, 1_000, 2_000]);
        assert_eq!(s.cycles, 3);
        assert!((s.cycles_per_s - 750_000.0).abs() < 1e-6);
        assert_eq!(s.p50_us, 1.0);
    }
}

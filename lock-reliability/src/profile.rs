//! How much of each scenario a run does: `short` for CI, `long` for a release.

use std::time::Duration;

use serde::Serialize;

/// The size of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// About a minute in all: a few faults of every kind.
    Short,
    /// The release gate: at least 5,000 faults per backend, two minutes of CPU stress.
    Long,
}

/// The numbers behind a profile.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Locks raced on at once, each with its own workers and resource.
    pub lanes: usize,
    /// Worker processes per lane.
    pub workers: usize,
    /// The ttl in the fault scenarios.
    pub ttl: Duration,
    /// Holds last up to this long in the fault scenarios.
    pub hold_max: Duration,
    /// Holder kills tried per lane.
    pub kills: usize,
    /// Holder pauses tried per lane.
    pub pauses: usize,
    /// Server kill + restart cycles.
    pub restarts: usize,
    /// `pg_terminate_backend` rounds.
    pub terminations: usize,
    /// How long both cores are kept busy.
    pub stress: Duration,
    /// Faults each backend must have had for the run to pass (0: no minimum).
    pub min_faults: u64,
    /// CLI lanes side by side.
    pub cli_lanes: usize,
    /// `lock run` processes per CLI lane.
    pub cli_workers: usize,
    /// Faults of each kind struck per CLI lane.
    pub cli_faults: usize,
    /// CLI faults each backend must have had (0: no minimum).
    pub min_cli_faults: u64,
    /// The semaphore and reader-writer lanes run every library scenario; if not, only the
    /// holder kill and the holder pause (the short profile, to stay short).
    pub every_kind_everywhere: bool,
}

/// The ttl of the CLI lanes' `lock run` (renewed every ttl/3, the supervisor's grace a third).
pub const CLI_TTL: Duration = Duration::from_secs(1);
/// The CLI lanes' commands hold from a tenth of this to all of it.
pub const CLI_HOLD_MAX: Duration = Duration::from_millis(400);

/// The ttl under CPU stress, renewed every ttl/3, and how long those holds last.
pub const STRESS_TTL: Duration = Duration::from_secs(1);
/// Holds under stress last up to this long, so each sees several renewals.
pub const STRESS_HOLD_MAX: Duration = Duration::from_millis(2500);

impl Profile {
    /// The numbers.
    pub fn sizes(self) -> Sizes {
        match self {
            Profile::Short => Sizes {
                lanes: 2,
                workers: 3,
                ttl: Duration::from_millis(250),
                hold_max: Duration::from_millis(30),
                kills: 5,
                pauses: 5,
                restarts: 2,
                terminations: 3,
                stress: Duration::from_secs(5),
                min_faults: 0,
                cli_lanes: 2,
                cli_workers: 2,
                cli_faults: 3,
                min_cli_faults: 0,
                every_kind_everywhere: false,
            },
            Profile::Long => Sizes {
                lanes: 8,
                workers: 3,
                ttl: Duration::from_millis(250),
                hold_max: Duration::from_millis(30),
                kills: 600,
                pauses: 400,
                restarts: 30,
                terminations: 150,
                stress: Duration::from_secs(120),
                min_faults: 5_000,
                cli_lanes: 8,
                cli_workers: 3,
                cli_faults: 44,
                min_cli_faults: 1_000,
                every_kind_everywhere: true,
            },
        }
    }
}

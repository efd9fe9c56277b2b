//! What the kernel says about this machine and process: CPU steal from `/proc/stat`, resident
//! memory from `/proc/self/statm`, open file descriptors and inotify instances from
//! `/proc/self/fd`, and `CLOCK_MONOTONIC`, which every process on the machine shares.

use std::fs;

use nix::time::{ClockId, clock_gettime};
use serde::Serialize;

/// Nanoseconds on `CLOCK_MONOTONIC`: comparable across processes of one machine.
pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always there");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The aggregate `cpu` line of `/proc/stat`: steal and total ticks so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTicks {
    steal: u64,
    total: u64,
}

impl CpuTicks {
    /// Reads `/proc/stat` now; zeros where it cannot be read.
    pub fn read() -> Self {
        let text = fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already counted in user and nice.
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        Self {
            steal: fields.get(7).copied().unwrap_or(0),
            total: fields.iter().take(8).sum(),
        }
    }
}

/// CPU steal over a span: ticks before and after, and the share of all CPU time.
#[derive(Clone, Debug, Serialize)]
pub struct Steal {
    /// Steal ticks (USER_HZ, usually 1/100 s) in `/proc/stat` when the span began.
    pub before_ticks: u64,
    /// Steal ticks when it ended.
    pub after_ticks: u64,
    /// Ticks of all CPUs over the span.
    pub span_ticks: u64,
    /// Steal as a percentage of all CPU time in the span.
    pub percent: f64,
}

impl Steal {
    /// Steal between two readings.
    pub fn between(before: CpuTicks, after: CpuTicks) -> Self {
        let stolen = after.steal.saturating_sub(before.steal);
        let span = after.total.saturating_sub(before.total);
        Self {
            before_ticks: before.steal,
            after_ticks: after.steal,
            span_ticks: span,
            percent: if span == 0 {
                0.0
            } else {
                100.0 * stolen as f64 / span as f64
            },
        }
    }
}

/// Resident set size of this process, in bytes (`/proc/self/statm`, second field).
pub fn rss_bytes() -> u64 {
    let text = fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// This process's open file descriptors, and how many of them are inotify instances.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Fds {
    /// Open file descriptors.
    pub open: usize,
    /// Of which inotify instances.
    pub inotify: usize,
}

impl Fds {
    /// Counts `/proc/self/fd` now.
    pub fn count() -> Self {
        let mut fds = Self::default();
        let Ok(entries) = fs::read_dir("/proc/self/fd") else {
            return fds;
        };
        for entry in entries.flatten() {
            fds.open += 1;
            if fs::read_link(entry.path())
                .is_ok_and(|target| target.to_string_lossy().contains("inotify"))
            {
                fds.inotify += 1;
            }
        }
        fds
    }
}

/// The machine the run is on: cores, CPU model, kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPUs this process may run on.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads it from `/proc`.
    pub fn read() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown".to_owned(), |m| m.trim().to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".to_owned(), |k| k.trim().to_owned()),
        }
    }
}

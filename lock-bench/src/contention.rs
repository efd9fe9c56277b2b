//! Contention: several processes (this binary again, as hidden `__contend` workers) take
//! turns on one name guarding a counter file. Each worker stamps every cycle on
//! `CLOCK_MONOTONIC`, which all processes share: when it began to wait, when it got the lock,
//! when it began to release, when the release returned. From the merged stamps come cycles/s,
//! holder switches, handoff times (release begun by one worker → acquire returned in
//! another) and waits. The counter must end at workers × cycles, or the lock let two in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lock::{
    AcquireOptions, Acquisition, Guard, Kind, Lock, LockName, Permits, ReleaseOutcome, Ttl, Wait,
};
use serde::{Deserialize, Serialize};

use crate::procfs::monotonic_ns;
use crate::stats::Spread;
use crate::{Res, together};

/// The ttl of contended leases: far longer than a turn, so expiry plays no part.
const TTL_MS: u64 = 10_000;

/// One cycle of one worker, in `CLOCK_MONOTONIC` nanoseconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Stamp {
    /// Began `Guard::acquire` (waiting forever).
    pub wait_start: u64,
    /// `Guard::acquire` returned with the lock.
    pub acquired: u64,
    /// Began `Guard::release`.
    pub release_start: u64,
    /// `Guard::release` returned.
    pub released: u64,
}

/// What the workers take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mix {
    /// Every worker takes the lock alone.
    Exclusive,
    /// Every worker takes one of [`SEMAPHORE_PERMITS`] permits.
    Semaphore,
    /// Worker 0 writes (exclusive), the others read (shared).
    ReadersWriter,
}

/// The semaphore's permits in the [`Mix::Semaphore`] run.
pub const SEMAPHORE_PERMITS: u32 = 3;

/// The processes of the [`Mix::Semaphore`] run: more than twice the permits, so that some
/// always wait.
pub const SEMAPHORE_WORKERS: usize = 8;

/// How long a hold lasts in the semaphore and readers-and-writer runs (a sleep), so that
/// holds overlap as they do in use and the runs show how many were inside at once.
pub const MIX_HOLD_US: u64 = 1_000;

impl Mix {
    /// What worker `index` claims, as its `--kind` argument.
    fn kind_arg(self, index: usize) -> &'static str {
        match self {
            Self::Exclusive => "exclusive",
            Self::Semaphore => "permit",
            Self::ReadersWriter if index == 0 => "exclusive",
            Self::ReadersWriter => "shared",
        }
    }

    /// How many may be inside at once.
    fn capacity(self) -> usize {
        match self {
            Self::Exclusive => 1,
            Self::Semaphore => SEMAPHORE_PERMITS as usize,
            Self::ReadersWriter => usize::MAX,
        }
    }
}

/// A worker's `--kind` argument as a kind.
pub fn kind_of(arg: &str) -> Res<Kind> {
    Ok(match arg {
        "exclusive" => Kind::Exclusive,
        "shared" => Kind::Shared,
        "permit" => Kind::permit(Permits::new(SEMAPHORE_PERMITS)?),
        other => return Err(format!("unknown kind {other:?}").into()),
    })
}

/// What a worker prints when it is done: one JSON line.
#[derive(Debug, Serialize, Deserialize)]
struct WorkerOutput {
    stamps: Vec<Stamp>,
}

/// What the contention section found.
#[derive(Clone, Debug, Serialize)]
pub struct ContentionReport {
    /// Worker processes.
    pub workers: usize,
    /// Cycles each worker ran.
    pub cycles_per_worker: usize,
    /// All cycles.
    pub total_cycles: usize,
    /// The counter ended at workers × cycles: nobody got in twice at once.
    pub counter_ok: bool,
    /// Cycles per second, first acquisition to last release.
    pub cycles_per_s: f64,
    /// Times the lock went to a different worker than the one that had it before.
    pub holder_switches: usize,
    /// Release begun by one worker → acquire returned in the next holder, over the switches.
    pub handoff: Spread,
    /// Every wait, from `Guard::acquire` called to returned.
    pub wait: Spread,
    /// The highest of the workers' own p99 waits, µs.
    pub worst_worker_p99_wait_us: f64,
    /// What the workers took.
    pub mix: Mix,
    /// The most holds inside at once (from grant to release begun).
    pub most_inside: usize,
    /// Holds granted while the capacity was already taken (must be 0), and, for readers
    /// and a writer, holds that overlapped the writer's (must be 0).
    pub over_admissions: usize,
    /// Readers and a writer: the writer's waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writer_wait: Option<Spread>,
}

/// Runs `workers` copies of this binary on `url`, `cycles` each, taking what `mix` says, and
/// merges what they saw.
pub fn run(
    url: &str,
    workers: usize,
    cycles: usize,
    scratch: &Path,
    mix: Mix,
) -> Res<ContentionReport> {
    let counter = scratch.join("contention-counter");
    std::fs::write(&counter, "0")?;
    let exe = std::env::current_exe()?;
    let name = match mix {
        Mix::Exclusive => "contended",
        Mix::Semaphore => "contended-semaphore",
        Mix::ReadersWriter => "contended-readers-writer",
    };
    let commands = (0..workers)
        .map(|i| {
            let mut command = Command::new(&exe);
            command
                .args(["__contend", "--url", url, "--name", name, "--cycles"])
                .arg(cycles.to_string())
                .arg("--counter")
                .arg(&counter)
                .args(["--kind", mix.kind_arg(i)]);
            if mix != Mix::Exclusive {
                command.args(["--hold-us", &MIX_HOLD_US.to_string()]);
            }
            command
        })
        .collect();
    let mut per_worker = Vec::new();
    for line in together::run("contention", commands)? {
        let output: WorkerOutput = serde_json::from_str(&line)?;
        per_worker.push(output.stamps);
    }
    let count: usize = std::fs::read_to_string(&counter)?.trim().parse()?;
    let writers = (0..workers)
        .filter(|&i| mix.kind_arg(i) == "exclusive")
        .count();
    Ok(analyse(&per_worker, cycles, count == writers * cycles, mix))
}

/// The most holds inside at once, and the holds granted while `capacity` were inside.
fn inside(all: &[(usize, Stamp)], capacity: usize) -> (usize, usize) {
    let mut events: Vec<(u64, i32)> = all
        .iter()
        .flat_map(|(_, s)| [(s.acquired, 1), (s.release_start, -1)])
        .collect();
    // At one instant, a release begun before a grant.
    events.sort_unstable();
    let (mut now, mut most, mut over) = (0usize, 0usize, 0usize);
    for (_, step) in events {
        if step > 0 {
            if now >= capacity {
                over += 1;
            }
            now += 1;
            most = most.max(now);
        } else {
            now = now.saturating_sub(1);
        }
    }
    (most, over)
}

/// Merges the workers' stamps.
fn analyse(
    per_worker: &[Vec<Stamp>],
    cycles: usize,
    counter_ok: bool,
    mix: Mix,
) -> ContentionReport {
    let mut all: Vec<(usize, Stamp)> = per_worker
        .iter()
        .enumerate()
        .flat_map(|(w, stamps)| stamps.iter().map(move |s| (w, *s)))
        .collect();
    all.sort_by_key(|(_, s)| s.acquired);
    let mut handoffs = Vec::new();
    for pair in all.windows(2) {
        let ((prev_worker, prev), (next_worker, next)) = (pair[0], pair[1]);
        if prev_worker != next_worker {
            handoffs.push(next.acquired.saturating_sub(prev.release_start));
        }
    }
    let waits: Vec<u64> = all
        .iter()
        .map(|(_, s)| s.acquired.saturating_sub(s.wait_start))
        .collect();
    let worst_worker_p99_wait_us = per_worker
        .iter()
        .map(|stamps| {
            let w: Vec<u64> = stamps
                .iter()
                .map(|s| s.acquired.saturating_sub(s.wait_start))
                .collect();
            Spread::of_nanos(&w).p99_us
        })
        .fold(0.0, f64::max);
    let (most_inside, mut over_admissions) = inside(&all, mix.capacity());
    let mut writer_wait = None;
    if mix == Mix::ReadersWriter {
        let writes: Vec<Stamp> = all
            .iter()
            .filter(|(w, _)| *w == 0)
            .map(|(_, s)| *s)
            .collect();
        over_admissions += all
            .iter()
            .filter(|(w, s)| {
                *w != 0
                    && writes
                        .iter()
                        .any(|x| s.acquired < x.release_start && x.acquired < s.release_start)
            })
            .count();
        let waits: Vec<u64> = writes
            .iter()
            .map(|s| s.acquired.saturating_sub(s.wait_start))
            .collect();
        writer_wait = Some(Spread::of_nanos(&waits));
    }
    let first = all.first().map_or(0, |(_, s)| s.acquired);
    let last = all.iter().map(|(_, s)| s.released).max().unwrap_or(first);
    let span = last.saturating_sub(first).max(1);
    ContentionReport {
        workers: per_worker.len(),
        cycles_per_worker: cycles,
        total_cycles: all.len(),
        counter_ok,
        cycles_per_s: all.len() as f64 * 1e9 / span as f64,
        holder_switches: handoffs.len(),
        handoff: Spread::of_nanos(&handoffs),
        wait: Spread::of_nanos(&waits),
        worst_worker_p99_wait_us,
        mix,
        most_inside,
        over_admissions,
        writer_wait,
    }
}

/// The worker: connects, warms up, says `ready`, waits for `go` on stdin, runs `cycles`
/// cycles of acquire (waiting, a lease of `kind`) → counter + 1 (exclusive leases only) →
/// `hold_us` asleep → release, and prints its stamps as one JSON line.
pub async fn worker(
    url: &str,
    name: &str,
    cycles: usize,
    counter: &Path,
    kind: &str,
    hold_us: u64,
) -> Res<()> {
    let lock: Arc<dyn Lock> = lock::connect(url).await?;
    let name = LockName::new(name)?;
    let kind = kind_of(kind)?;
    let warm_options = AcquireOptions::new()
        .ttl(Ttl::from_millis(TTL_MS)?)
        .wait(Wait::Forever);
    let options = warm_options.clone().kind(kind);
    // Warm up: connections open, scripts and statements loaded, the change watcher running.
    let warm = LockName::new("contention-warm-up")?;
    for _ in 0..5 {
        let guard = Guard::acquire(lock.clone(), warm.clone(), warm_options.clone())
            .await?
            .acquired()
            .ok_or("warm-up lock not acquired")?;
        guard.release().await?;
    }
    drop(lock.watch(&name).await?);
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let mut stamps = Vec::with_capacity(cycles);
    let counter: PathBuf = counter.to_owned();
    for _ in 0..cycles {
        let wait_start = monotonic_ns();
        let acquisition = Guard::acquire(lock.clone(), name.clone(), options.clone()).await?;
        let acquired = monotonic_ns();
        let Acquisition::Acquired(guard) = acquisition else {
            return Err(format!("waiting forever answered {acquisition:?}").into());
        };
        if kind == Kind::Exclusive {
            let value: u64 = std::fs::read_to_string(&counter)?.trim().parse()?;
            std::fs::write(&counter, (value + 1).to_string())?;
        }
        if hold_us > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(hold_us)).await;
        }
        let release_start = monotonic_ns();
        let outcome = guard.release().await?;
        let released = monotonic_ns();
        if outcome != ReleaseOutcome::Released {
            return Err(format!("a contended release answered {outcome:?}").into());
        }
        stamps.push(Stamp {
            wait_start,
            acquired,
            release_start,
            released,
        });
    }
    println!("{}", serde_json::to_string(&WorkerOutput { stamps })?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(acquired: u64, release_start: u64) -> Stamp {
        Stamp {
            wait_start: acquired - 10,
            acquired,
            release_start,
            released: release_start + 5,
        }
    }

    #[test]
    fn switches_and_handoffs_come_from_the_merged_order() {
        // Worker 0 holds twice in a row, then worker 1 takes over 300 ns after the release.
        let per_worker = vec![
            vec![stamp(100, 200), stamp(250, 400)],
            vec![stamp(700, 800)],
        ];
        let report = analyse(&per_worker, 2, true, Mix::Exclusive);
        assert_eq!(report.total_cycles, 3);
        assert_eq!(report.holder_switches, 1);
        assert_eq!(report.handoff.count, 1);
        assert!((report.handoff.mean_us - 0.3).abs() < 1e-9);
        assert_eq!((report.most_inside, report.over_admissions), (1, 0));
    }

    #[test]
    fn over_admissions_are_counted() {
        // Three holds at once on a semaphore of 3 is fine; four is one too many.
        let three = vec![
            vec![stamp(100, 500)],
            vec![stamp(200, 600)],
            vec![stamp(300, 700)],
        ];
        let report = analyse(&three, 1, true, Mix::Semaphore);
        assert_eq!((report.most_inside, report.over_admissions), (3, 0));
        let mut four = three.clone();
        four.push(vec![stamp(400, 800)]);
        let report = analyse(&four, 1, true, Mix::Semaphore);
        assert_eq!((report.most_inside, report.over_admissions), (4, 1));
        // A reader beside the writer (worker 0) is one too; readers together are not.
        let rw = vec![
            vec![stamp(100, 200)],
            vec![stamp(300, 500)],
            vec![stamp(400, 600)],
        ];
        let report = analyse(&rw, 1, true, Mix::ReadersWriter);
        assert_eq!(report.over_admissions, 0);
        let rw = vec![vec![stamp(100, 350)], vec![stamp(300, 500)]];
        let report = analyse(&rw, 1, true, Mix::ReadersWriter);
        assert_eq!(report.over_admissions, 1);
    }
}

//! `lock run` as a whole process beside its peer, `flock(1)`: what a guarded command costs
//! end to end on the file backend (start, connect, acquire and tie, the supervisor fork, the
//! command, release), against the kernel lock's own command-line tool, in alternating runs.
//!
//! The `lock` binary is looked for beside this one (`cargo build --release -p lock-cli`
//! puts it there); without it the section says so and measures nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;

use crate::Res;
use crate::stats::Spread;

/// `lock run` and `flock` wall times, per run.
#[derive(Clone, Debug, Serialize)]
pub struct CliRunReport {
    /// `lock --backend file://DIR run NAME -- true`.
    pub lock_run: Spread,
    /// `flock FILE true`.
    pub flock: Spread,
    /// Median of per-pair ratios, `lock run` over `flock`.
    pub median_ratio: f64,
}

/// The `lock` binary beside this one, if built.
pub fn lock_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let lock = exe.parent()?.join("lock");
    lock.is_file().then_some(lock)
}

/// `runs` pairs of `lock run` then `flock`, each running `true`, in `dir`.
pub fn run(lock: &Path, dir: &Path, runs: usize) -> Res<CliRunReport> {
    std::fs::create_dir_all(dir)?;
    let url = format!("file://{}", dir.join("locks").display());
    let flock_file = dir.join("flock.lock");
    let time = |cmd: &mut Command| -> Res<u64> {
        let start = Instant::now();
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("{cmd:?} failed: {status}").into());
        }
        Ok(start.elapsed().as_nanos() as u64)
    };
    let lock_run = || {
        let mut cmd = Command::new(lock);
        cmd.args(["--backend", &url, "run", "cli-bench", "--", "true"])
            .env_remove("LOCK_URL");
        cmd
    };
    let flock = || {
        let mut cmd = Command::new("flock");
        cmd.arg(&flock_file).arg("true");
        cmd
    };
    // One warm-up of each: the page cache, the lock file made.
    time(&mut lock_run())?;
    time(&mut flock())?;
    let (mut ours, mut peer, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let a = time(&mut lock_run())?;
        let b = time(&mut flock())?;
        ours.push(a);
        peer.push(b);
        ratios.push(a as f64 / b as f64);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(CliRunReport {
        lock_run: Spread::of_nanos(&ours),
        flock: Spread::of_nanos(&peer),
        median_ratio: ratios[ratios.len() / 2],
    })
}

//! The scenarios: what goes wrong while the lanes' workers race, and how it is injected.

use std::fmt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lock::Lock;
use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep};

use crate::backend::{Backend, Env};
use crate::check::cli::Strike;
use crate::check::{self, Fault, Rules, Tally};
use crate::cli::{self, lane::CliLane, lane::CliSpawn};
use crate::clock::{ClockWatch, Rng, now_ns};
use crate::lane::{self, Lane, LeaseKind, Spawn, signal};
use crate::profile::{CLI_HOLD_MAX, CLI_TTL, STRESS_HOLD_MAX, STRESS_TTL, Sizes};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The holder is killed with `SIGKILL`: the lock is free again within ttl + 1 s, never
    /// before its expiry.
    KillHolder,
    /// The holder is stopped past its ttl, then continued: another acquires; the stale
    /// holder is told it lost, its release is refused, its late write is refused.
    PauseHolder,
    /// The server is killed with `SIGKILL` and restarted.
    ServerRestart,
    /// Every connection of the lock's is ended with `pg_terminate_backend`.
    Terminate,
    /// Both cores busy at ttl 1 s, renewing every ttl/3: no loss at all.
    CpuStress,
    /// `lock run` workers; `SIGKILL` of `lock` alone: its command is stopped, no two commands
    /// at once.
    CliKillLock,
    /// `lock run` workers; `SIGKILL` of `lock`'s group, the supervisor's and the command's.
    CliKillAll,
    /// `lock run` workers; `SIGSTOP` of `lock` past the ttl: the supervisor stops the command
    /// before the lease can lapse, and `lock` exits 76 once continued.
    CliPauseLock,
    /// `lock run` workers; `SIGTERM` of `lock`.
    CliTermLock,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 9] = [
        Scenario::KillHolder,
        Scenario::PauseHolder,
        Scenario::ServerRestart,
        Scenario::Terminate,
        Scenario::CpuStress,
        Scenario::CliKillLock,
        Scenario::CliKillAll,
        Scenario::CliPauseLock,
        Scenario::CliTermLock,
    ];

    /// Whether its workers are `lock run` processes.
    pub fn is_cli(self) -> bool {
        self.strike().is_some()
    }

    /// What a CLI scenario does to `lock`.
    fn strike(self) -> Option<Strike> {
        match self {
            Scenario::CliKillLock => Some(Strike::KillLock),
            Scenario::CliKillAll => Some(Strike::KillAll),
            Scenario::CliPauseLock => Some(Strike::PauseLock),
            Scenario::CliTermLock => Some(Strike::TermLock),
            _ => None,
        }
    }

    /// Whether the scenario means anything for `backend`.
    pub fn applies_to(self, backend: Backend) -> bool {
        match self {
            Scenario::ServerRestart => backend.has_server(),
            Scenario::Terminate => backend.is_postgres(),
            // A session lock has no lease to lapse while `lock` is stopped.
            Scenario::CliPauseLock => backend.expires(),
            _ => true,
        }
    }

    /// Whether the lanes of `kind` run this scenario at `sizes` (the CLI scenarios have one
    /// kind of their own, reported as exclusive).
    pub fn runs_kind(self, kind: LeaseKind, sizes: &Sizes) -> bool {
        if self.is_cli() {
            return kind == LeaseKind::Exclusive;
        }
        kind == LeaseKind::Exclusive
            || sizes.every_kind_everywhere
            || matches!(self, Scenario::KillHolder | Scenario::PauseHolder)
    }

    /// Whether a loss of a hold no fault touched is a violation here (under stress it is
    /// the point; elsewhere a 250 ms ttl on a loaded machine may lapse, which is safe).
    pub fn losses_are_violations(self) -> bool {
        self == Scenario::CpuStress
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::KillHolder => "holder kill -9",
            Scenario::PauseHolder => "holder SIGSTOP past ttl",
            Scenario::ServerRestart => "server kill -9 + restart",
            Scenario::Terminate => "pg_terminate_backend",
            Scenario::CpuStress => "both cores busy, ttl 1 s",
            Scenario::CliKillLock => "kill -9 of lock",
            Scenario::CliKillAll => "kill -9 of everything",
            Scenario::CliPauseLock => "SIGSTOP of lock past ttl",
            Scenario::CliTermLock => "SIGTERM of lock",
        })
    }
}

/// Runs `scenario` on `env` at `sizes`, its lanes' workers taking leases of `kind` (ignored by
/// the CLI scenarios), in a fresh directory under `root`, removed at the end unless `keep`.
/// `fair_line`: the backend serves waiters first come, first served (so a starved writer is
/// a violation).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    env: &mut Env,
    scenario: Scenario,
    kind: LeaseKind,
    fair_line: bool,
    sizes: &Sizes,
    root: &Path,
    keep: bool,
    clock: &ClockWatch,
) -> Tally {
    if let Some(strike) = scenario.strike() {
        return run_cli(env, scenario, strike, sizes, root, keep).await;
    }
    let start = now_ns();
    let (ttl, hold_max) = match scenario {
        Scenario::CpuStress => (STRESS_TTL, STRESS_HOLD_MAX),
        _ => (sizes.ttl, sizes.hold_max),
    };
    // A writer waits long enough to be starved: a second past the bound.
    let bound = check::starve_bound(ttl, hold_max);
    let starve_after = (kind == LeaseKind::Rw && fair_line).then_some(bound);
    let wait = Duration::from_secs(2).max(bound + Duration::from_secs(1));
    let spawn = Spawn {
        exe: std::env::current_exe().expect("this binary's path"),
        url: env.url.clone(),
        ttl,
        hold_max,
        wait: if kind == LeaseKind::Rw {
            wait
        } else {
            Duration::from_secs(2)
        },
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("{:?}-{scenario:?}-{kind:?}-", env.backend))
        .tempdir_in(root)
        .expect("a run directory");
    let mut lanes: Vec<Lane> = (0..sizes.lanes)
        .map(|i| {
            Lane::start(
                dir.path(),
                i,
                kind.workers(sizes.workers),
                kind,
                spawn.clone(),
            )
        })
        .collect();
    let lock = connect(&env.url).await;
    sleep(Duration::from_millis(300)).await; // the workers connect and start racing
    let mut server_faults = Vec::new();
    let mut rng = Rng::from_entropy();
    match scenario {
        Scenario::KillHolder | Scenario::PauseHolder => {
            let mut set = JoinSet::new();
            for lane in lanes.drain(..) {
                let (lock, n, expires) = (lock.clone(), sizes.kills, env.backend.expires());
                let n = if scenario == Scenario::KillHolder {
                    n
                } else {
                    sizes.pauses
                };
                let multi = kind != LeaseKind::Exclusive;
                set.spawn(holder_faults(lane, lock, scenario, n, ttl, expires, multi));
            }
            while let Some(lane) = set.join_next().await {
                lanes.push(lane.expect("a lane's fault task"));
            }
        }
        Scenario::ServerRestart => {
            for _ in 0..sizes.restarts {
                sleep(Duration::from_millis(300 + rng.below(300))).await;
                let down = now_ns();
                tokio::task::block_in_place(|| env.kill_server());
                sleep(env.down_for(ttl)).await;
                tokio::task::block_in_place(|| env.restart_server());
                server_faults.push(Fault::ServerRestart { down, up: now_ns() });
                sleep(Duration::from_millis(500)).await;
            }
        }
        Scenario::Terminate => {
            for _ in 0..sizes.terminations {
                sleep(Duration::from_millis(150 + rng.below(250))).await;
                let t = now_ns();
                tokio::task::block_in_place(|| env.terminate_connections());
                server_faults.push(Fault::Terminate { t, done: now_ns() });
            }
            sleep(Duration::from_millis(500)).await;
        }
        Scenario::CliKillLock
        | Scenario::CliKillAll
        | Scenario::CliPauseLock
        | Scenario::CliTermLock => unreachable!("run by run_cli"),
        Scenario::CpuStress => {
            let mut burners: Vec<Child> = (0..2).map(|_| burner(&spawn.exe)).collect();
            sleep(sizes.stress).await;
            for b in &mut burners {
                let _ = b.kill();
                let _ = b.wait();
            }
        }
    }
    let end = now_ns();
    for lane in &mut lanes {
        lane.stop(Duration::from_secs(15)).await;
    }
    let rules = Rules {
        expires: env.backend.expires(),
        frees_on_death: env.backend.frees_on_death(),
        ttl,
        starve_after,
    };
    let steps = clock.steps_between(start, now_ns());
    let mut tally = Tally::default();
    for lane in &lanes {
        tally.add(&check::check(
            &lane.record(&server_faults, end, &steps),
            rules,
        ));
    }
    tally.clock_steps = steps.len() as u64;
    tally.faults += server_faults.len() as u64;
    if keep {
        for lane in &lanes {
            lane.write_faults(&server_faults);
        }
        eprintln!(
            "{} / {scenario} / {kind}: kept in {}",
            env.backend,
            dir.keep().display()
        );
    }
    tally
}

/// Runs a CLI scenario: `lock run` workers in `sizes.cli_lanes` lanes, `sizes.cli_faults`
/// strikes in each.
async fn run_cli(
    env: &Env,
    scenario: Scenario,
    strike: Strike,
    sizes: &Sizes,
    root: &Path,
    keep: bool,
) -> Tally {
    let spawn = CliSpawn {
        lock: cli::lock_binary(),
        exe: std::env::current_exe().expect("this binary's path"),
        url: env.url.clone(),
        ttl: CLI_TTL,
        hold_max: CLI_HOLD_MAX,
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("{:?}-{scenario:?}-", env.backend))
        .tempdir_in(root)
        .expect("a run directory");
    let mut set = JoinSet::new();
    for i in 0..sizes.cli_lanes {
        let mut lane = CliLane::start(dir.path(), i, sizes.cli_workers, spawn.clone());
        let n = sizes.cli_faults;
        set.spawn(async move {
            lane.idle(Duration::from_millis(300)).await;
            lane.strike(strike, n).await
        });
    }
    let mut lanes = Vec::new();
    while let Some(lane) = set.join_next().await {
        lanes.push(lane.expect("a CLI lane's task"));
    }
    let end = now_ns();
    for lane in &mut lanes {
        lane.stop(Duration::from_secs(10)).await;
    }
    // A command stops within the grace after `lock` dies, not at once: the ttl bounds it.
    let rules = Rules {
        expires: env.backend.expires(),
        frees_on_death: false,
        ttl: CLI_TTL,
        starve_after: None,
    };
    let mut tally = Tally::default();
    for lane in &lanes {
        tally.add(&check::cli::check(&lane.record(end), rules));
    }
    if keep {
        eprintln!(
            "{} / {scenario}: kept in {}",
            env.backend,
            dir.keep().display()
        );
    }
    tally
}

/// The runner's own handle, for `inspect`; the server may just have been restarted.
pub async fn connect(url: &str) -> Arc<dyn Lock> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match lock::connect(url).await {
            Ok(lock) => return lock,
            Err(e) if Instant::now() > deadline => panic!("cannot open {url}: {e}"),
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Kills or pauses the holder of `lane`'s lock `n` times (on a lock with several holders,
/// the one whose lease runs out first). After each, it waits for the lock to be taken by
/// another; with several holders, for the struck one to be gone from them.
async fn holder_faults(
    mut lane: Lane,
    lock: Arc<dyn Lock>,
    scenario: Scenario,
    n: usize,
    ttl: Duration,
    expires: bool,
    multi: bool,
) -> Lane {
    let mut rng = Rng::from_entropy();
    for _ in 0..n {
        let Some(pid) = wait_for_holder(&lane, &*lock, None).await else {
            continue;
        };
        // Somewhere in the hold, not always at its start.
        sleep(Duration::from_micros(rng.below(3_000))).await;
        let taken_within = ttl + Duration::from_secs(3);
        if scenario == Scenario::KillHolder {
            let t = lane.kill(pid);
            let confirmed = lane.is_holder(&*lock, pid).await;
            let gone = if multi {
                wait_gone(&lane, &*lock, pid, taken_within).await
            } else {
                wait_for_holder_until(&lane, &*lock, Some(pid), taken_within).await;
                None
            };
            lane.faults.push(Fault::Kill {
                pid,
                t,
                confirmed,
                gone,
            });
        } else {
            let stop = now_ns();
            signal(pid, Signal::SIGSTOP);
            let stopped = lane::stopped(pid).await;
            if expires {
                if multi {
                    let _ = wait_gone(&lane, &*lock, pid, taken_within).await;
                } else {
                    wait_for_holder_until(&lane, &*lock, Some(pid), taken_within).await;
                }
                // Let the new holder reach the resource first, most of the time.
                sleep(Duration::from_micros(rng.below(20_000))).await;
            } else {
                sleep(ttl * 3 / 2).await;
            }
            // A stop that landed inside an operation on a lock file keeps the file's flock:
            // nobody can take the lock until the process runs again (see lock-file's README).
            let mid_operation = expires && lane.frozen(&*lock).await;
            signal(pid, Signal::SIGCONT);
            lane.faults.push(Fault::Pause {
                pid,
                stop,
                stopped,
                cont: now_ns(),
                mid_operation,
            });
            sleep(Duration::from_millis(20)).await;
        }
    }
    lane
}

/// The pid of the lane's holder once there is one other than `not`, within five seconds.
async fn wait_for_holder(lane: &Lane, lock: &dyn Lock, not: Option<u32>) -> Option<u32> {
    wait_for_holder_until(lane, lock, not, Duration::from_secs(5)).await
}

async fn wait_for_holder_until(
    lane: &Lane,
    lock: &dyn Lock,
    not: Option<u32>,
    within: Duration,
) -> Option<u32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(pid) = lane.holder(lock).await
            && Some(pid) != not
        {
            return Some(pid);
        }
        sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Once worker `pid` is no longer among the lock's holders, within `within`.
/// Waits until `pid` is no longer among the lock's holders, within `within`: when it was
/// seen gone (`None` if it was still listed at the end).
async fn wait_gone(lane: &Lane, lock: &dyn Lock, pid: u32, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !lane.is_holder(lock, pid).await {
            return Some(now_ns());
        }
        sleep(Duration::from_millis(1)).await;
    }
    None
}

fn burner(exe: &Path) -> Child {
    Command::new(exe)
        .arg("burn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start a CPU burner")
}

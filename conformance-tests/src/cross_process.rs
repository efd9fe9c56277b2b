//! The cross-process check: W operating-system processes × M cycles of acquire → critical
//! section → release on one name, in three modes: an exclusive lock, a semaphore of
//! [`PERMITS`], and a reader-writer lock (a writer every fourth worker, readers the rest).
//!
//! The parent re-runs the test binary W times as workers, filtered to this case (an
//! environment variable says so, and the runner then does a worker's share instead of the
//! suite). Each worker
//! records every hold as `start end token` on `CLOCK_MONOTONIC`, which all processes of a
//! machine share, and bumps a counter file without any locking of its own. The parent then
//! checks that no two holds overlap, that tokens rise in order of entry, and that the counter
//! lost no update. A semaphore's workers also count themselves in a shared directory (a file
//! each while inside): neither that count nor the overlap of holds may pass N, and every
//! grant has its own token. A reader-writer run checks that no writer's hold overlaps any
//! other hold, and that the writers' counter lost no update.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lock_core::{Acquisition, Claim, Kind, LockName, OwnerId, Permits, ReleaseOutcome, Ttl, Wait};
use nix::time::{ClockId, clock_gettime};

use crate::suite::{Setup, Suite};

/// Worker processes in the cross-process check.
pub const WORKERS: usize = 8;
/// Acquire → critical section → release cycles per worker.
pub const CYCLES: usize = 200;
/// The semaphore run's permits.
pub const PERMITS: u32 = 3;

/// In a reader-writer run, every fourth worker writes.
fn is_writer(index: usize) -> bool {
    index.is_multiple_of(4)
}

/// What the workers take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// An exclusive lock, [`CYCLES`] each.
    Exclusive,
    /// A semaphore of [`PERMITS`], [`CYCLES`]/2 each.
    Semaphore,
    /// A reader-writer lock, [`CYCLES`]/2 each.
    ReadersWriters,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Exclusive => "exclusive",
            Self::Semaphore => "semaphore",
            Self::ReadersWriters => "readers-writers",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "semaphore" => Self::Semaphore,
            "readers-writers" => Self::ReadersWriters,
            _ => Self::Exclusive,
        }
    }

    fn cycles(self) -> usize {
        match self {
            Self::Exclusive => CYCLES,
            Self::Semaphore | Self::ReadersWriters => CYCLES / 2,
        }
    }

    /// What worker `index` claims.
    fn kind(self, index: usize) -> Kind {
        match self {
            Self::Exclusive => Kind::Exclusive,
            Self::Semaphore => Kind::permit(Permits::new(PERMITS).expect("permits")),
            Self::ReadersWriters if is_writer(index) => Kind::Exclusive,
            Self::ReadersWriters => Kind::Shared,
        }
    }
}

const ENV_SUITE: &str = "LOCK_CONFORMANCE_WORKER_SUITE";
const ENV_INDEX: &str = "LOCK_CONFORMANCE_WORKER_INDEX";
const ENV_DIR: &str = "LOCK_CONFORMANCE_WORKER_DIR";
const ENV_LOCATION: &str = "LOCK_CONFORMANCE_WORKER_LOCATION";
const ENV_NAME: &str = "LOCK_CONFORMANCE_WORKER_NAME";
const ENV_MODE: &str = "LOCK_CONFORMANCE_WORKER_MODE";

/// How long the whole check may take before the parent calls it hung.
const DEADLINE: Duration = Duration::from_secs(300);

fn monotonic_ns() -> u128 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128
}

/// One hold as a worker saw it.
#[derive(Debug, Clone, Copy)]
struct Hold {
    start: u128,
    end: u128,
    token: u64,
    worker: usize,
    /// How many workers were inside, counted in the shared directory (semaphores only).
    inside: u64,
}

pub(crate) async fn check(s: &Suite, mode: Mode) {
    let dir = tempfile::tempdir().expect("a temp dir for the workers' records");
    std::fs::write(counter_path(dir.path()), "0").expect("counter file");
    std::fs::create_dir(inside_path(dir.path())).expect("the inside directory");
    let name = s.name("race");
    let exe = std::env::current_exe().expect("the test binary's path");
    let test = s.trial();
    let mut children: Vec<_> = (0..WORKERS)
        .map(|i| {
            Command::new(&exe)
                .args([
                    test.as_str(),
                    "--exact",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(ENV_SUITE, s.trial_prefix())
                .env(ENV_INDEX, i.to_string())
                .env(ENV_DIR, dir.path())
                .env(ENV_LOCATION, s.location())
                .env(ENV_NAME, name.as_str())
                .env(ENV_MODE, mode.as_str())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a worker process")
        })
        .collect();
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for (i, child) in children.iter_mut().enumerate() {
        loop {
            if let Some(status) = child.try_wait().expect("wait for a worker") {
                if !status.success() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    failures.push(format!("worker {i} failed ({status}):\n{err}"));
                }
                break;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                failures.push(format!("worker {i} still running after {DEADLINE:?}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let mut holds = Vec::new();
    for i in 0..WORKERS {
        let text = std::fs::read_to_string(record_path(dir.path(), i)).expect("a worker's record");
        holds.extend(text.lines().map(|line| {
            let f: Vec<u128> = line
                .split(' ')
                .map(|x| x.parse().expect("a number"))
                .collect();
            Hold {
                start: f[0],
                end: f[1],
                token: f[2] as u64,
                worker: i,
                inside: f[3] as u64,
            }
        }));
    }
    let cycles = mode.cycles();
    assert_eq!(holds.len(), WORKERS * cycles, "every cycle recorded");
    holds.sort_by_key(|h| h.start);
    let counter: usize = std::fs::read_to_string(counter_path(dir.path()))
        .expect("counter")
        .trim()
        .parse()
        .expect("a number");
    let fencing = s.capabilities().fencing;
    let most_inside = match mode {
        Mode::Exclusive => {
            no_overlap(&holds, fencing);
            assert_eq!(counter, WORKERS * cycles, "the counter lost updates");
            1
        }
        Mode::Semaphore => {
            let most = most_at_once(&holds);
            assert!(
                most <= PERMITS as usize,
                "{most} holds at once on a semaphore of {PERMITS}"
            );
            let counted = holds.iter().map(|h| h.inside).max().unwrap_or(0);
            assert!(
                counted <= u64::from(PERMITS),
                "{counted} workers counted themselves inside a semaphore of {PERMITS}"
            );
            most
        }
        Mode::ReadersWriters => {
            let writers: Vec<&Hold> = holds.iter().filter(|h| is_writer(h.worker)).collect();
            for w in &writers {
                let with = holds
                    .iter()
                    .find(|h| h.worker != w.worker && h.start < w.end && w.start < h.end);
                assert!(with.is_none(), "a writer's hold {w:?} overlaps {with:?}");
            }
            assert_eq!(counter, writers.len(), "the writers' counter lost updates");
            most_at_once(&holds)
        }
    };
    if fencing {
        let mut tokens: Vec<u64> = holds.iter().map(|h| h.token).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), holds.len(), "every grant has its own token");
    }
    let switches = holds
        .windows(2)
        .filter(|w| w[0].worker != w[1].worker)
        .count();
    println!(
        "cross-process {}: {WORKERS} processes × {cycles} cycles, at most {most_inside} inside at once, {switches} holder switches, in {:?}",
        mode.as_str(),
        started.elapsed()
    );
}

/// Exclusive holds (sorted by start): none overlaps the next, and tokens rise in order of
/// entry.
fn no_overlap(holds: &[Hold], fencing: bool) {
    for w in holds.windows(2) {
        assert!(
            w[0].end < w[1].start,
            "two holds overlap: {:?} and {:?}",
            w[0],
            w[1]
        );
        if fencing {
            assert!(
                w[0].token < w[1].token,
                "tokens must rise in order of entry: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }
}

/// The most holds that were inside at one instant.
fn most_at_once(holds: &[Hold]) -> usize {
    let mut events: Vec<(u128, i32)> = holds
        .iter()
        .flat_map(|h| [(h.start, 1), (h.end, -1)])
        .collect();
    // At one instant, an exit before an entry: a hold ends before the next begins.
    events.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in events {
        now += step;
        most = most.max(now);
    }
    most as usize
}

fn counter_path(dir: &Path) -> PathBuf {
    dir.join("counter")
}

fn inside_path(dir: &Path) -> PathBuf {
    dir.join("inside")
}

fn record_path(dir: &Path, worker: usize) -> PathBuf {
    dir.join(format!("worker-{worker}"))
}

/// A worker process's share of the check, set up from its environment.
pub(crate) struct Worker {
    /// The trial prefix of the suite it works for.
    suite: String,
    index: usize,
    dir: PathBuf,
    location: String,
    name: LockName,
    mode: Mode,
}

impl Worker {
    /// `Some` when this process is a worker: then [`Worker::suite`] says of which suite.
    pub(crate) fn from_env() -> Option<Self> {
        let suite = std::env::var(ENV_SUITE).ok()?;
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
        Some(Self {
            suite,
            index: var(ENV_INDEX).parse().expect("worker index"),
            dir: PathBuf::from(var(ENV_DIR)),
            location: var(ENV_LOCATION),
            name: LockName::new(var(ENV_NAME)).expect("lock name"),
            mode: Mode::parse(&var(ENV_MODE)),
        })
    }

    /// The trial prefix of the suite this worker works for.
    pub(crate) fn suite(&self) -> &str {
        &self.suite
    }

    pub(crate) async fn run(self, setup: &dyn Setup) {
        let lock = setup.connect(&self.location).await;
        let owner = OwnerId::random();
        let ttl = Ttl::from_millis(30_000).expect("ttl");
        let counter = counter_path(&self.dir);
        let kind = self.mode.kind(self.index);
        let me = inside_path(&self.dir).join(self.index.to_string());
        let mut record = String::new();
        for _ in 0..self.mode.cycles() {
            let claim = Claim::new(&self.name, &owner, ttl).with_kind(kind);
            let lease = match lock_core::acquire(&*lock, claim, Wait::Forever)
                .await
                .expect("acquire")
            {
                Acquisition::Acquired(lease) => lease,
                other => panic!("waiting forever ended with {other:?}"),
            };
            let start = monotonic_ns();
            let mut inside = 0;
            if self.mode == Mode::Semaphore {
                // Counted in the shared directory: a file per worker while it is inside.
                std::fs::write(&me, "").expect("enter");
                inside = std::fs::read_dir(me.parent().expect("dir"))
                    .expect("count")
                    .count();
                std::fs::remove_file(&me).expect("leave");
            } else if kind == Kind::Exclusive {
                // The critical section: a read-modify-write that loses updates without
                // exclusion.
                let n: u64 = std::fs::read_to_string(&counter)
                    .expect("read counter")
                    .trim()
                    .parse()
                    .expect("a number");
                std::fs::write(&counter, (n + 1).to_string()).expect("write counter");
            } else {
                // A reader reads, and may be beside other readers.
                let _ = std::fs::read_to_string(&counter).expect("read counter");
            }
            let end = monotonic_ns();
            record.push_str(&format!("{start} {end} {} {inside}\n", lease.token.get()));
            assert_eq!(
                lock.release(&self.name, &owner).await.expect("release"),
                ReleaseOutcome::Released
            );
        }
        std::fs::write(record_path(&self.dir, self.index), record).expect("write the record");
    }
}

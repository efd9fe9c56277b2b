//! A lane: one lock name, its worker processes, its resource and its directory. Lanes run side
//! by side, so faults land on several locks at once.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lock::{Capabilities, Kind, Lock, LockName, LockState, Permits};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use crate::check::{Fault, LaneRecord};
use crate::clock::{Step, now_ns};
use crate::history::{self, kind_word};
use crate::resource::Resource;
use crate::worker::{pid_of, stop_file};

/// The permits of a semaphore lane.
pub const PERMITS: u32 = 3;

/// The kind of lease a library lane's workers take: a lane dimension beside the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseKind {
    /// One holder at a time (every worker takes the lock exclusively).
    Exclusive,
    /// A semaphore of [`PERMITS`]: every worker takes one permit, at most 3 hold at once.
    Semaphore,
    /// A reader-writer lock: one worker in four (slots 0, 4, …) writes, the rest read.
    Rw,
}

impl LeaseKind {
    /// Every kind, in report order.
    pub const ALL: [LeaseKind; 3] = [LeaseKind::Exclusive, LeaseKind::Semaphore, LeaseKind::Rw];

    /// Whether a backend with `caps` can be sent this lane's claims.
    pub fn offered_by(self, caps: &Capabilities) -> bool {
        match self {
            LeaseKind::Exclusive => true,
            LeaseKind::Semaphore => caps.permits,
            LeaseKind::Rw => caps.shared,
        }
    }

    /// What a backend lacks for this kind, in the report's words.
    pub fn lacking(self) -> &'static str {
        match self {
            LeaseKind::Exclusive => "",
            LeaseKind::Semaphore => "no permits",
            LeaseKind::Rw => "no shared leases",
        }
    }

    /// Workers per lane, from the profile's `base` (exclusive lanes): a semaphore lane has two
    /// more workers than permits, so that they contend; a reader-writer lane five (two
    /// writers, three readers).
    pub fn workers(self, base: usize) -> usize {
        match self {
            LeaseKind::Exclusive => base,
            LeaseKind::Semaphore => PERMITS as usize + 2,
            LeaseKind::Rw => 5,
        }
    }

    /// The kind the worker in `slot` claims (a replacement keeps its slot's kind).
    pub fn worker_kind(self, slot: usize) -> Kind {
        match self {
            LeaseKind::Exclusive => Kind::Exclusive,
            LeaseKind::Semaphore => Kind::permit(Permits::new(PERMITS).expect("3 permits")),
            LeaseKind::Rw if slot.is_multiple_of(4) => Kind::Exclusive,
            LeaseKind::Rw => Kind::Shared,
        }
    }
}

impl std::fmt::Display for LeaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LeaseKind::Exclusive => "exclusive",
            LeaseKind::Semaphore => "semaphore of 3",
            LeaseKind::Rw => "reader-writer",
        })
    }
}

/// How a lane's workers are started.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// This binary.
    pub exe: PathBuf,
    /// The backend's URL.
    pub url: String,
    /// The ttl.
    pub ttl: Duration,
    /// The longest hold.
    pub hold_max: Duration,
    /// How long a worker waits for the lock before giving up.
    pub wait: Duration,
}

/// A lane and its running workers.
#[derive(Debug)]
pub struct Lane {
    /// The lock the workers race for.
    pub name: LockName,
    dir: PathBuf,
    spawn: Spawn,
    workers: Vec<Child>,
    /// The kind each worker of `workers` claims.
    kinds: Vec<Kind>,
    /// Every pid a worker of this lane has had.
    pids: HashSet<u32>,
    started: usize,
    /// The faults injected into this lane's workers.
    pub faults: Vec<Fault>,
}

impl Lane {
    /// Makes the lane's directory under `root` and starts `workers` workers, each claiming
    /// its slot's kind of `kind`.
    pub fn start(root: &Path, index: usize, workers: usize, kind: LeaseKind, spawn: Spawn) -> Self {
        let dir = root.join(format!("lane-{index}"));
        std::fs::create_dir_all(&dir).expect("the lane's directory");
        let mut lane = Self {
            name: LockName::new(format!("lane-{index}")).expect("a lock name"),
            dir,
            spawn,
            workers: Vec::new(),
            kinds: Vec::new(),
            pids: HashSet::new(),
            started: 0,
            faults: Vec::new(),
        };
        for slot in 0..workers {
            lane.add_worker(kind.worker_kind(slot));
        }
        lane
    }

    /// Starts one more worker, with a pid no earlier worker of this lane had: histories,
    /// holds and faults are named by pid, and pids come round again (`pid_max` may be 32768,
    /// and every Postgres connection forks a server process), which would merge two workers.
    pub fn add_worker(&mut self, kind: Kind) {
        loop {
            let mut child = self.spawn_worker(kind);
            if self.pids.insert(child.id()) {
                self.workers.push(child);
                self.kinds.push(kind);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn_worker(&mut self, kind: Kind) -> Child {
        self.started += 1;
        let stderr = File::create(self.dir.join(format!("stderr-{}", self.started)))
            .expect("a worker's stderr file");
        let s = &self.spawn;
        in_own_session(&mut Command::new(&s.exe))
            .arg("worker")
            .args(["--url", &s.url, "--name", self.name.as_str()])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--ttl-ms", &s.ttl.as_millis().to_string()])
            .args(["--hold-max-ms", &s.hold_max.as_millis().to_string()])
            .args(["--wait-ms", &s.wait.as_millis().to_string()])
            .args(["--kind", &kind_word(kind)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start a worker")
    }

    /// The pid of the worker of this lane that holds its lock, as the backend says.
    pub async fn holder(&self, lock: &dyn Lock) -> Option<u32> {
        self.holder_owner(lock)
            .await
            .filter(|pid| self.workers.iter().any(|c| c.id() == *pid))
    }

    /// The pid in the owner id of the lock's holder (the one whose lease runs out first, when
    /// several hold it), whether or not that worker still lives.
    pub async fn holder_owner(&self, lock: &dyn Lock) -> Option<u32> {
        match lock.inspect(&self.name).await {
            Ok(LockState::Locked(h)) => pid_of(&h.first().owner),
            _ => None,
        }
    }

    /// Whether worker `pid` is among the lock's holders, as the backend says.
    pub async fn is_holder(&self, lock: &dyn Lock, pid: u32) -> bool {
        match lock.inspect(&self.name).await {
            Ok(LockState::Locked(h)) => h.as_slice().iter().any(|h| pid_of(&h.owner) == Some(pid)),
            _ => false,
        }
    }

    /// Whether the backend cannot answer for this lane's lock because a stopped process holds
    /// its lock file in the middle of an operation (the file backend's `Unreachable`).
    pub async fn frozen(&self, lock: &dyn Lock) -> bool {
        matches!(
            lock.inspect(&self.name).await,
            Err(lock::Error::Unreachable { .. })
        )
    }

    /// Kills worker `pid` with `SIGKILL`, reaps it, and starts a replacement.
    pub fn kill(&mut self, pid: u32) -> u64 {
        let t = now_ns();
        signal(pid, Signal::SIGKILL);
        let mut kind = self.kinds.first().copied().unwrap_or_default();
        if let Some(i) = self.workers.iter().position(|c| c.id() == pid) {
            let mut child = self.workers.swap_remove(i);
            kind = self.kinds.swap_remove(i);
            let _ = child.wait();
        }
        self.add_worker(kind);
        t
    }

    /// Stops the workers: the stop file first, then `SIGKILL` for any still running after
    /// `grace` (recorded as stragglers). A worker found dead of a signal the runner never sent
    /// it is recorded as killed from outside ([`Fault::Outside`]).
    pub async fn stop(&mut self, grace: Duration) {
        use std::os::unix::process::ExitStatusExt;
        std::fs::write(stop_file(&self.dir), "").expect("the stop file");
        let deadline = tokio::time::Instant::now() + grace;
        for child in &mut self.workers {
            loop {
                if let Some(status) = child.try_wait().expect("wait for a worker") {
                    // A panic that aborts is counted as a panic, from the worker's stderr.
                    if let Some(signal) = status.signal().filter(|&s| s != Signal::SIGABRT as i32) {
                        let pid = child.id();
                        eprintln!(
                            "{}: worker {pid} died of signal {signal}, which the runner did \
                             not send: something outside the run killed it (the OOM killer, \
                             a `kill` of stopped processes meant for another run?); its locks \
                             were freed when it died, the checker cannot tell when",
                            self.name
                        );
                        self.faults.push(Fault::Outside { pid, signal });
                    }
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    let t = now_ns();
                    let pid = child.id();
                    signal(pid, Signal::SIGCONT);
                    let _ = child.kill();
                    let _ = child.wait();
                    self.faults.push(Fault::Straggler { pid, t });
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.workers.clear();
        self.kinds.clear();
    }

    /// Writes the lane's faults and the run's server faults to `faults` in its directory, one
    /// per line (for `--keep`: the histories alone do not say when the runner struck).
    pub fn write_faults(&self, server_faults: &[Fault]) {
        let text: String = self
            .faults
            .iter()
            .chain(server_faults)
            .map(|f| format!("{f:?}\n"))
            .collect();
        std::fs::write(self.dir.join("faults"), text).expect("the lane's fault list");
    }

    /// What the lane left behind, with the run's server faults and wall-clock steps added.
    pub fn record(&self, server_faults: &[Fault], end: u64, clock_steps: &[Step]) -> LaneRecord {
        let mut lines = Vec::new();
        let mut panics = 0;
        for entry in std::fs::read_dir(&self.dir).expect("the lane's directory") {
            let path = entry.expect("a directory entry").path();
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if file.starts_with("history-") {
                lines.extend(history::read(&path).unwrap_or_else(|e| panic!("{e}")));
            } else if file.starts_with("stderr-") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                panics += text.matches("panicked").count();
            }
        }
        let resource = Resource::new(&self.dir);
        let mut faults = self.faults.clone();
        faults.extend_from_slice(server_faults);
        LaneRecord {
            lines,
            accesses: resource.log(),
            final_value: resource.state().1,
            faults,
            panics,
            end,
            clock_steps: clock_steps.to_vec(),
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        for child in &mut self.workers {
            signal(child.id(), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// When every thread of process `pid` is seen stopped (state `T` in `/proc/<pid>/task/*/stat`)
/// after a `SIGSTOP`, looking every 100 µs for at most a second; the time of the last look
/// if not (a process gone, or a look that failed).
pub async fn stopped(pid: u32) -> u64 {
    let all_stopped = || -> Option<bool> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut any = false;
        for task in tasks {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            if state != 'T' && state != 't' {
                return Some(false);
            }
            any = true;
        }
        Some(any)
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match all_stopped() {
            Some(false) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_micros(100)).await;
            }
            _ => return crate::clock::now_ns(),
        }
    }
}

/// Starts `command` in a session of its own (`setsid`), so that only this runner signals the
/// process it starts. A worker stopped by a pause scenario must stay stopped until the runner
/// continues it: a shell or tool that started the runner may, when it ends, kill the stopped
/// processes of its own session (one such tool runner was seen doing it: every stopped worker
/// of the run died at one instant, and the checker, not knowing, read the freed locks as
/// grants over capacity). The worker is no one else's job; the runner still stops it by pid.
pub fn in_own_session(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: `setsid` is async-signal-safe and touches no memory of the parent: it is allowed
    // between `fork` and `exec`.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        })
    }
}

/// Sends `sig` to process `pid`; a process already gone is fine.
pub fn signal(pid: u32, sig: Signal) {
    let _ = kill(Pid::from_raw(pid as i32), sig);
}

#[cfg(test)]
mod session_tests {
    use super::*;

    /// The session id of process `pid` (field 6 of `/proc/<pid>/stat`).
    fn session_of(pid: u32) -> u32 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_command = &stat[stat.rfind(')').unwrap() + 1..];
        after_command
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_process_started_in_its_own_session_leads_it() {
        let mut child = in_own_session(&mut Command::new("sleep"))
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let led = session_of(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(led, pid, "its own session");
        assert_ne!(session_of(std::process::id()), pid);
    }
}

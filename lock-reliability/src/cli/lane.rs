//! A CLI lane: one lock name raced for by `lock run` processes, restarted as they end, and
//! the faults that strike them.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::{Instant, sleep};

use crate::check::cli::{CliFault, CliRecord, Strike};
use crate::cli::log::{self, Entry};
use crate::clock::{Rng, now_ns};
use crate::lane::{in_own_session, signal};

/// How a CLI lane's `lock run` processes are started.
#[derive(Debug, Clone)]
pub struct CliSpawn {
    /// The `lock` binary.
    pub lock: PathBuf,
    /// This binary (the command).
    pub exe: PathBuf,
    /// The backend's URL.
    pub url: String,
    /// The lease's ttl.
    pub ttl: Duration,
    /// Commands hold from a tenth of this to all of it.
    pub hold_max: Duration,
}

/// A CLI lane and its running `lock run` processes.
#[derive(Debug)]
pub struct CliLane {
    name: String,
    dir: PathBuf,
    spawn: CliSpawn,
    running: Vec<Child>,
    /// How each `lock` ended: its exit code, or 128 + the signal that ended it.
    exits: HashMap<u32, i32>,
    stopping: bool,
    stderr: File,
    log_read: usize,
    log_text: String,
    entries: Vec<Entry>,
    /// Commands a fault already struck, by pid.
    struck: HashSet<u32>,
    faults: Vec<CliFault>,
    rng: Rng,
}

impl CliLane {
    /// Makes the lane's directory under `root` and starts `workers` `lock run` processes.
    pub fn start(root: &Path, index: usize, workers: usize, spawn: CliSpawn) -> Self {
        let dir = root.join(format!("cli-lane-{index}"));
        std::fs::create_dir_all(&dir).expect("the lane's directory");
        std::fs::write(log::path(&dir), "").expect("the command log");
        let stderr = File::create(dir.join("stderr")).expect("the lane's stderr file");
        let mut lane = Self {
            name: format!("cli-lane-{index}"),
            dir,
            spawn,
            running: Vec::new(),
            exits: HashMap::new(),
            stopping: false,
            stderr,
            log_read: 0,
            log_text: String::new(),
            entries: Vec::new(),
            struck: HashSet::new(),
            faults: Vec::new(),
            rng: Rng::from_entropy(),
        };
        for _ in 0..workers {
            let child = lane.spawn_lock();
            lane.running.push(child);
        }
        lane
    }

    fn spawn_lock(&mut self) -> Child {
        let s = &self.spawn;
        let low = s.hold_max.as_millis() as u64 / 10;
        let hold = low + self.rng.below(s.hold_max.as_millis() as u64 - low);
        // A session of its own (see `in_own_session`), which also makes it a process group of
        // its own, as the strikes at `lock`'s group need.
        in_own_session(&mut Command::new(&s.lock))
            .args(["--backend", &s.url, "run", "--ttl"])
            .arg(format!("{}ms", s.ttl.as_millis()))
            .arg(&self.name)
            .arg("--")
            .arg(&s.exe)
            .arg("command")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--hold-ms", &hold.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.stderr.try_clone().expect("the lane's stderr"))
            .spawn()
            .expect("start `lock run`")
    }

    /// Reaps the `lock` processes that ended (starting others unless stopping) and reads the
    /// command log's new lines.
    fn poll(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            match self.running[i].try_wait().expect("wait for `lock`") {
                Some(status) => {
                    let code = status
                        .code()
                        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                    // Reaped by `try_wait` above.
                    let pid = self.running.swap_remove(i).id();
                    self.exits.insert(pid, code);
                    if !self.stopping {
                        let child = self.spawn_lock();
                        self.running.push(child);
                    }
                }
                None => i += 1,
            }
        }
        let mut file = File::open(log::path(&self.dir)).expect("the command log");
        file.seek(SeekFrom::Start(self.log_read as u64))
            .expect("seek the command log");
        let mut more = String::new();
        file.read_to_string(&mut more)
            .expect("read the command log");
        self.log_read += more.len();
        self.log_text.push_str(&more);
        let (entries, used) = log::parse_complete(&self.log_text);
        self.log_text.drain(..used);
        self.entries.extend(entries);
    }

    /// The latest command not yet struck that is running under a live `lock`: its
    /// (command, lock, supervisor) pids.
    fn holder(&self) -> Option<(u32, u32, u32)> {
        let ended: HashSet<u32> = self
            .entries
            .iter()
            .filter_map(|e| match *e {
                Entry::End { pid, .. } => Some(pid),
                _ => None,
            })
            .collect();
        self.entries.iter().rev().find_map(|e| match *e {
            Entry::Start {
                pid,
                lock,
                supervisor,
                ..
            } if !ended.contains(&pid)
                && !self.struck.contains(&pid)
                && self.running.iter().any(|c| c.id() == lock) =>
            {
                Some((pid, lock, supervisor))
            }
            _ => None,
        })
    }

    /// Whether a command other than `not` started after `after`.
    fn started_after(&self, after: u64, not: u32) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(*e, Entry::Start { pid, t, .. } if t > after && pid != not))
    }

    /// Polls every millisecond until `done` or `within` passes.
    async fn poll_until(&mut self, within: Duration, done: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            self.poll();
            if done(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            sleep(Duration::from_millis(1)).await;
        }
    }

    /// Strikes `n` running commands' `lock` processes with `strike`, one after another, each
    /// once the previous victim's successor has started (or a ttl and 3 s have passed).
    pub async fn strike(mut self, strike: Strike, n: usize) -> Self {
        let ttl = self.spawn.ttl;
        for _ in 0..n {
            self.poll_until(Duration::from_secs(5), |l| l.holder().is_some())
                .await;
            let Some((command, lock, supervisor)) = self.holder() else {
                continue;
            };
            self.struck.insert(command);
            // Somewhere in the command's run, not always at its start.
            sleep(Duration::from_micros(self.rng.below(30_000))).await;
            let t = now_ns();
            let mut cont = None;
            match strike {
                Strike::KillLock => signal(lock, Signal::SIGKILL),
                Strike::KillAll => {
                    for group in [lock, supervisor, command] {
                        let _ = killpg(Pid::from_raw(group as i32), Signal::SIGKILL);
                    }
                }
                Strike::TermLock => signal(lock, Signal::SIGTERM),
                Strike::PauseLock => {
                    signal(lock, Signal::SIGSTOP);
                    self.poll_until(ttl + Duration::from_secs(3), |l| {
                        l.started_after(t, command)
                    })
                    .await;
                    signal(lock, Signal::SIGCONT);
                    cont = Some(now_ns());
                }
            }
            self.faults.push(CliFault {
                strike,
                command,
                lock,
                t,
                cont,
            });
            self.poll_until(ttl + Duration::from_secs(3), |l| {
                l.started_after(t, command)
            })
            .await;
        }
        self
    }

    /// Lets the commands run for `d` with no fault.
    pub async fn idle(&mut self, d: Duration) {
        self.poll_until(d, |_| false).await;
    }

    /// Stops: no new `lock run`; `SIGTERM` to those left (a waiting one gives up, a running
    /// one stops its command), then `SIGKILL` of their groups after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        self.stopping = true;
        for child in &self.running {
            signal(child.id(), Signal::SIGTERM);
        }
        if !self.poll_until(grace, |l| l.running.is_empty()).await {
            for child in &self.running {
                signal(child.id(), Signal::SIGCONT);
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            }
            self.poll_until(Duration::from_secs(5), |l| l.running.is_empty())
                .await;
        }
        self.poll();
    }

    /// What the lane left behind.
    pub fn record(&self, end: u64) -> CliRecord {
        let stderr = std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default();
        CliRecord {
            entries: self.entries.clone(),
            faults: self.faults.clone(),
            exits: self.exits.clone(),
            end,
            panics: stderr.matches("panicked").count(),
        }
    }
}

impl Drop for CliLane {
    fn drop(&mut self) {
        for child in &mut self.running {
            signal(child.id(), Signal::SIGCONT);
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

//! `lock run` keeps its command inside its lease, on files, Redis and Postgres: the real `lock`
//! binary runs a command (this test binary again, in a role) that starts a grandchild, and the
//! `lock` process alone is killed or stopped.
//!
//! Every process of a command logs its start on `CLOCK_MONOTONIC`, which all processes of the
//! machine share; this process watches each one's end through a pidfd (read on waking, so
//! never early, but maybe late: it bounds how long a process outlived `lock`). Whether two
//! commands overlapped is judged exactly, by the second run's command itself: first thing, it
//! looks whether any process of the first run's command still lives (`/proc`, zombies being
//! dead).

use std::io::Write as _;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lock_testkit::{PostgresServer, RedisServer, Shared};
use nix::sys::signal::{Signal, kill};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

static REDIS: Shared<RedisServer> = Shared::new(RedisServer::start);
static POSTGRES: Shared<PostgresServer> = Shared::new(PostgresServer::start);

/// Set in a command's environment: `command` (starts a grandchild) or `grandchild`.
const ROLE: &str = "LOCK_RUN_SAFETY_ROLE";
/// Where the command's processes log `start PID NS` and `end PID NS`, and `overlap PID`.
const LOG: &str = "LOCK_RUN_SAFETY_LOG";
/// Another run's log: a process listed there and still alive when this command starts is an
/// overlap.
const OTHERS: &str = "LOCK_RUN_SAFETY_OTHERS";
/// How long each process of the command sleeps before it ends by itself.
const HOLD_MS: &str = "LOCK_RUN_SAFETY_HOLD_MS";
/// Set: the command and its grandchild ignore SIGTERM, so that only the KILL after the grace
/// stops them, and a lock freed too early is caught by the next command.
const IGNORE_TERM: &str = "LOCK_RUN_SAFETY_IGNORE_TERM";

fn monotonic_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// In a command's process, does the command's part and exits; elsewhere returns at once.
fn act_if_command() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let log = PathBuf::from(std::env::var_os(LOG).expect("a log"));
    let pid = std::process::id();
    if let Some(others) = std::env::var_os(OTHERS) {
        for other in pids(Path::new(&others)) {
            if alive(other) {
                append(&log, &format!("overlap {other}"));
            }
        }
    }
    if std::env::var_os(IGNORE_TERM).is_some() {
        // SAFETY: no other thread handles signals in this short-lived process.
        unsafe { nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn) }
            .expect("ignore SIGTERM");
    }
    append(&log, &format!("start {pid} {}", monotonic_ns()));
    let grandchild = (role == "command").then(|| {
        Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env(ROLE, "grandchild")
            .env_remove(OTHERS)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the grandchild")
    });
    let hold: u64 = std::env::var(HOLD_MS).map_or(60_000, |v| v.parse().unwrap());
    std::thread::sleep(Duration::from_millis(hold));
    if let Some(mut grandchild) = grandchild {
        let _ = grandchild.wait();
    }
    append(&log, &format!("end {pid} {}", monotonic_ns()));
    std::process::exit(0);
}

fn append(log: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The pids that logged a start in `log`, and when.
fn starts(log: &Path) -> Vec<(i32, u64)> {
    read(log)
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("start ")?.split(' ');
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect()
}

fn pids(log: &Path) -> Vec<i32> {
    starts(log).into_iter().map(|(pid, _)| pid).collect()
}

/// Whether `pid` is a live process (a zombie, ended but not yet reaped, is not).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Tells, through `tx`, when `pid` ends (`CLOCK_MONOTONIC` ns, read on waking: never early).
fn watch_end(pid: i32, tx: mpsc::Sender<(i32, u64)>) {
    // SAFETY: `pidfd_open` takes a pid and flags, and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open({pid}) failed: is it gone already?");
    // SAFETY: a non-negative result is a descriptor this process now owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    std::thread::spawn(move || {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(60_000u16));
        let _ = tx.send((pid, monotonic_ns()));
    });
}

/// Watches every pid of `pids` end; the returned function waits for all of them and says
/// when each ended.
fn watch_ends(pids: &[i32]) -> impl FnOnce() -> Vec<(i32, u64)> {
    let (tx, rx) = mpsc::channel();
    for &pid in pids {
        watch_end(pid, tx.clone());
    }
    let count = pids.len();
    move || {
        (0..count)
            .map(|_| {
                rx.recv_timeout(Duration::from_secs(60))
                    .expect("every process ends")
            })
            .collect()
    }
}

/// The second run's command found no process of the first's alive as it started.
fn assert_no_overlap(second_log: &Path) {
    let log = read(second_log);
    assert!(
        !log.contains("overlap"),
        "a first-run process lived as the second command started: {log}"
    );
}

/// A backend for `lock --backend`.
enum Backend {
    File(tempfile::TempDir),
    Redis,
    Postgres,
    /// Postgres, `mode=session`: the lock is the server session's, and the commands ignore
    /// SIGTERM.
    PostgresSession,
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::File(dir) => format!("file://{}", dir.path().display()),
            Backend::Redis => REDIS.with(RedisServer::url),
            Backend::Postgres => POSTGRES.with(PostgresServer::url),
            Backend::PostgresSession => {
                format!("{}?mode=session", POSTGRES.with(PostgresServer::url))
            }
        }
    }
}

/// One `lock run NAME --ttl TTL -- <this test, as a command>`.
struct Run {
    child: Child,
    log: PathBuf,
}

fn run(
    test: &str,
    backend: &Backend,
    name: &str,
    ttl: &str,
    hold_ms: u64,
    log: PathBuf,
    others: Option<&Path>,
) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lock"));
    cmd.args(["--backend", &backend.url(), "run", name, "--ttl", ttl, "--"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(ROLE, "command")
        .env(LOG, &log)
        .env(HOLD_MS, hold_ms.to_string())
        .env_remove("LOCK_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(others) = others {
        cmd.env(OTHERS, others);
    }
    if matches!(backend, Backend::PostgresSession) {
        cmd.env(IGNORE_TERM, "1");
    }
    Run {
        child: cmd.spawn().expect("start lock run"),
        log,
    }
}

impl Run {
    /// Waits until the command and its grandchild have both logged their start; their pids.
    fn started(&self) -> Vec<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pids = pids(&self.log);
            if pids.len() == 2 {
                return pids;
            }
            assert!(
                Instant::now() < deadline,
                "the command never started: {:?}",
                read(&self.log)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Its exit code and stderr.
    fn finish(self) -> (i32, String) {
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// `lock` alone killed with SIGKILL while its command and a grandchild run: both are gone
/// within the grace, a waiting second run never starts its command while one of them lives,
/// and on files (`--ttl 30s`) it starts within a second, not after the ttl.
fn killing_lock_alone(test: &str, backend: Backend, ttl: &str) {
    act_if_command();
    let dir = tempfile::tempdir().unwrap();
    let (first_log, second_log) = (dir.path().join("first"), dir.path().join("second"));
    let first = run(test, &backend, "job", ttl, 60_000, first_log.clone(), None);
    let victims = first.started();
    let ends = watch_ends(&victims);
    let second = run(
        test,
        &backend,
        "job",
        "30s",
        0,
        second_log.clone(),
        Some(&first_log),
    );
    std::thread::sleep(Duration::from_millis(200)); // let it wait in line, mostly
    let killed_at = monotonic_ns();
    kill(first.pid(), Signal::SIGKILL).unwrap();
    let (code, stderr) = second.finish();
    assert_eq!(code, 0, "the second run: {stderr}");
    assert_no_overlap(&second_log);
    let second_start = starts(&second_log)[0].1;
    let grace = Duration::from_secs(1); // a third of the shortest ttl here, 3 s
    for (pid, ended) in ends() {
        let after = Duration::from_nanos(ended - killed_at);
        assert!(
            after <= grace + Duration::from_millis(500),
            "{pid} outlived the grace by far: {after:?}"
        );
    }
    if matches!(backend, Backend::File(_)) {
        let after = Duration::from_nanos(second_start - killed_at);
        assert!(
            after < Duration::from_secs(1),
            "the file lock was not free at once: {after:?}"
        );
    }
    let _ = first.finish();
}

/// `lock` alone stopped with SIGSTOP past its ttl: its supervisor stops the command before the
/// lease can lapse, so a second run's command finds none of it alive; continued, `lock` exits
/// 76.
fn stopping_lock_alone(test: &str, backend: Backend) {
    act_if_command();
    let dir = tempfile::tempdir().unwrap();
    let (first_log, second_log) = (dir.path().join("first"), dir.path().join("second"));
    let first = run(test, &backend, "job", "3s", 60_000, first_log.clone(), None);
    let victims = first.started();
    let ends = watch_ends(&victims);
    let stopped_at = monotonic_ns();
    kill(first.pid(), Signal::SIGSTOP).unwrap();
    let second = run(
        test,
        &backend,
        "job",
        "3s",
        0,
        second_log.clone(),
        Some(&first_log),
    );
    let (code, stderr) = second.finish();
    assert_eq!(code, 0, "the second run: {stderr}");
    assert_no_overlap(&second_log);
    for (pid, ended) in ends() {
        assert!(ended > stopped_at, "{pid} ended before lock was stopped");
    }
    kill(first.pid(), Signal::SIGCONT).unwrap();
    let (code, stderr) = first.finish();
    assert_eq!(code, 76, "the stopped run, continued: {stderr}");
}

#[test]
fn killing_lock_stops_its_command_and_frees_a_file_lock_at_once() {
    let test = "killing_lock_stops_its_command_and_frees_a_file_lock_at_once";
    killing_lock_alone(test, Backend::File(tempfile::tempdir().unwrap()), "30s");
}

#[test]
fn killing_lock_stops_its_command_on_redis() {
    killing_lock_alone(
        "killing_lock_stops_its_command_on_redis",
        Backend::Redis,
        "3s",
    );
}

#[test]
fn killing_lock_stops_its_command_on_postgres() {
    killing_lock_alone(
        "killing_lock_stops_its_command_on_postgres",
        Backend::Postgres,
        "3s",
    );
}

/// In session mode the lock is the server session's, which ends when `lock`'s connection
/// drops: the supervisor keeps a copy of that connection's socket until the command's group is
/// gone, so the lock outlives a killed `lock` exactly as long as its command (here one that
/// ignores TERM and lives the whole grace).
#[test]
fn killing_lock_stops_its_command_on_postgres_session_mode() {
    killing_lock_alone(
        "killing_lock_stops_its_command_on_postgres_session_mode",
        Backend::PostgresSession,
        "3s",
    );
}

#[test]
fn stopping_lock_past_its_ttl_stops_its_command_first_on_files() {
    let test = "stopping_lock_past_its_ttl_stops_its_command_first_on_files";
    stopping_lock_alone(test, Backend::File(tempfile::tempdir().unwrap()));
}

#[test]
fn stopping_lock_past_its_ttl_stops_its_command_first_on_redis() {
    stopping_lock_alone(
        "stopping_lock_past_its_ttl_stops_its_command_first_on_redis",
        Backend::Redis,
    );
}

#[test]
fn stopping_lock_past_its_ttl_stops_its_command_first_on_postgres() {
    let test = "stopping_lock_past_its_ttl_stops_its_command_first_on_postgres";
    stopping_lock_alone(test, Backend::Postgres);
}

/// A command that leaves a process running in its group when it ends: that process is
/// stopped too before `lock run` returns.
#[test]
fn what_the_command_leaves_in_its_group_is_stopped_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("bg");
    let out = Command::new(env!("CARGO_BIN_EXE_lock"))
        .args([
            "--backend",
            &format!("file://{}", dir.path().display()),
            "run",
            "job",
            "--",
        ])
        .args(["sh", "-c", "sleep 60 & echo $! > \"$0\"; exit 3"])
        .arg(&pidfile)
        .env_remove("LOCK_URL")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = read(&pidfile).trim().parse().unwrap();
    assert!(!alive(pid), "the background sleep outlived lock run");
}

/// `--kill-after` above a third of the ttl is cut to that, and `run` says so; the default
/// 5 s is cut silently.
#[test]
fn a_long_kill_after_is_cut_to_a_third_of_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let stderr = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lock"))
            .args(["--backend", &url, "run", "job", "--ttl", "3s"])
            .args(extra)
            .args(["--", "true"])
            .env_remove("LOCK_URL")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let cut = stderr(&["--kill-after", "10s"]);
    assert!(cut.contains("--kill-after 10s is cut to 1s"), "{cut}");
    for quiet in [stderr(&[]), stderr(&["--kill-after", "1s"])] {
        assert!(!quiet.contains("cut"), "{quiet}");
    }
}

/// A lease taken with `lock acquire --owner` is for later shell commands: it is not tied to
/// that short-lived process, and lives its ttl.
#[test]
fn a_lease_taken_by_acquire_outlives_the_cli_process() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let lock = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lock"))
            .args(["--backend", &url])
            .args(args)
            .env_remove("LOCK_URL")
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(
        lock(&["acquire", "job", "--owner", "a", "--ttl", "30s"]),
        Some(0)
    );
    assert_eq!(
        lock(&["acquire", "job", "--owner", "b"]),
        Some(1),
        "held by a"
    );
    assert_eq!(lock(&["release", "job", "--owner", "a"]), Some(0));
}

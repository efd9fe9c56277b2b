//! Child processes that die with the test process, and signals to them.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Sender};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, getppid};

/// How often the waiting loops in this crate look again.
pub(crate) const POLL: Duration = Duration::from_millis(20);

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Spawns `command` from one thread that lives as long as the process.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends, not the process.
/// Tests start servers on short-lived threads (the harness's thread per test, tokio's
/// blocking pool, a `LazyLock` filled by whichever test runs first), so forking from those
/// would kill the server when that thread ends.
fn spawn_from_long_lived_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("lock-testkit-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    // The requester waits for the reply, so sending cannot fail.
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the lock-testkit spawner thread");
        requests
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .send((command, reply))
        .expect("the lock-testkit spawner thread is gone");
    answer
        .recv()
        .expect("the lock-testkit spawner thread is gone")
}

/// Makes the child get SIGKILL when this process dies, however it dies.
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    let die_with_parent = move || {
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        // If the parent died before the line above, nobody will send the signal.
        if getppid().as_raw().unsigned_abs() != parent {
            return Err(Errno::ESRCH.into());
        }
        Ok(())
    };
    // SAFETY: the closure only makes two system calls (prctl, getppid), both safe to make
    // between fork and exec, and builds an io::Error from an errno without allocating.
    unsafe { command.pre_exec(die_with_parent) };
}

/// A server running as our direct child, killed (SIGKILL) when this process dies.
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    /// Starts `command` with stdin closed and stdout and stderr appended to `log`.
    pub(crate) fn spawn(mut command: Command, log: &Path) -> Self {
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|err| panic!("cannot open {}: {err}", log.display()))
        };
        command
            .stdin(Stdio::null())
            .stdout(open_log())
            .stderr(open_log());
        die_with_parent(&mut command);
        let program = command.get_program().to_owned();
        let child = spawn_from_long_lived_thread(command)
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()));
        Self { child }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal`; a no-op once the process has exited.
    pub(crate) fn signal(&self, signal: Signal) {
        send_signal(self.pid(), signal);
    }

    /// True once the process has exited (and then it is reaped).
    pub(crate) fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit; true if it did.
    pub(crate) fn wait_for_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.has_exited() {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
        true
    }

    /// SIGKILL, then reap, so no zombie is left behind (what dropping it does).
    pub(crate) fn kill(self) {
        drop(self);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Both fail only if it was reaped already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub(crate) fn send_signal(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    // The only expected failure is ESRCH: it has exited.
    let _ = signal::kill(Pid::from_raw(raw), signal);
}

/// The processes whose parent is `parent`, read from `/proc`.
pub(crate) fn child_pids(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (command) state ppid ...": the command may contain spaces and parentheses.
    let after_command = &stat[stat.rfind(')')? + 1..];
    after_command.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `command` to the end, capturing its output, but kills it after `timeout`.
///
/// Fails with a message when it cannot start or runs out of time; a non-zero exit is not
/// a failure here, the caller reads it from the [`Output`].
pub(crate) fn run_with_timeout(mut command: Command, timeout: Duration) -> Result<Output, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_owned();
    let mut child = command
        .spawn()
        .map_err(|err| format!("cannot start {}: {err}", program.display()))?;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {timeout:?}",
                    program.display()
                ));
            }
            Err(err) => return Err(format!("cannot wait for {}: {err}", program.display())),
        }
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

//! The supervisor: a small process between `lock run` and its command, so that the command
//! never outlives `lock` nor its lease.
//!
//! `lock run` forks it first thing, before any thread exists, and it waits on a Unix socket
//! pair for the word to start the command. From then on:
//!
//! - when `lock` goes away, however it ends (`SIGKILL`, the OOM killer, a crash), the
//!   supervisor reads the end of the socket and stops the command's whole process group: TERM,
//!   then KILL after the grace;
//! - `lock` tells it the lease's deadline after every renewal (the instant, on the machine's
//!   monotonic clock, by which KILL must land: `valid_until` less a margin); when that comes
//!   closer than the grace without a new one, because `lock` is stopped or the backend
//!   unreachable, the supervisor stops the command itself, TERM, then KILL by the deadline;
//! - it is the command's parent and the reaper of its orphans (`PR_SET_CHILD_SUBREAPER`), so
//!   it knows when the command's group is empty; when the command ends, what it left in its
//!   group is stopped too before `lock` releases;
//! - it stands in a process group of its own, so that a signal to `lock`'s group does not
//!   take it along; if the supervisor alone dies, `lock` stops the command.
//!
//! Limits: a process that leaves the command's process group (`setsid`, `setpgid`) is out of
//! reach; a machine that is paused whole (a VM suspended) stops the supervisor's clock too.

mod deadline;
mod message;
mod process;

use std::ffi::OsString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::unistd::{ForkResult, Pid, fork};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

pub use deadline::{margin, max_grace};
use message::Deadline;
pub use message::{FromSupervisor, ToSupervisor, Why};

/// `lock`'s end of a supervisor that has not started the command yet.
pub struct Supervisor {
    socket: UnixStream,
}

impl Supervisor {
    /// Forks the supervisor of `command`, which the lock `name` guards. Call it before any
    /// thread is started: the child goes on with this process's memory, single-threaded.
    pub fn fork(name: &str, command: &[OsString]) -> std::io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: no other thread exists yet (see above), so the child's copy of the process
        // is consistent; it runs only the supervisor and exits.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(ours);
                process::run(theirs, name, command)
            }
            ForkResult::Parent { .. } => Ok(Self { socket: ours }),
        }
    }

    /// Starts the command with fencing token `token`, with `tie` kept by the supervisor until
    /// the command's group is gone and inherited by the command when `hand_down`; its lease is good
    /// until `valid_until` less `margin`, and the grace between TERM and KILL is `grace`.
    /// Waits for the command to be started.
    ///
    /// # Errors
    /// The supervisor could not be told, or answered that the command could not be started
    /// (`Err(Some(failed))` then carries the code and message).
    pub async fn start(
        self,
        token: u64,
        tie: Option<BorrowedFd<'_>>,
        hand_down: bool,
        valid_until: tokio::time::Instant,
        margin: Duration,
        grace: Duration,
    ) -> Result<Running, Option<FromSupervisor>> {
        let start = ToSupervisor::Start {
            token,
            deadline: Deadline::from_instant(valid_until).minus(margin),
            grace,
            hand_down,
        };
        let line = start.to_line();
        let fds = tie.map(|fd| [fd.as_raw_fd()]);
        let cmsgs: Vec<ControlMessage> = fds.iter().map(|f| ControlMessage::ScmRights(f)).collect();
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(line.as_bytes())],
            &cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(|_| None)?;
        self.socket.set_nonblocking(true).map_err(|_| None)?;
        let socket = tokio::net::UnixStream::from_std(self.socket).map_err(|_| None)?;
        let (read, write) = socket.into_split();
        let mut running = Running {
            lines: BufReader::new(read).lines(),
            write,
            group: None,
            margin,
        };
        match running.next().await {
            Some(FromSupervisor::Started { pid }) => {
                running.group = Some(Pid::from_raw(pid));
                Ok(running)
            }
            other => Err(other),
        }
    }
}

/// `lock`'s end of a supervisor whose command runs.
pub struct Running {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    group: Option<Pid>,
    margin: Duration,
}

impl Running {
    /// The next message; `None` once the supervisor is gone. Cancel-safe.
    pub async fn next(&mut self) -> Option<FromSupervisor> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(message) = FromSupervisor::parse(&line) {
                        return Some(message);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The lease is good until `valid_until` now.
    pub async fn renewed(&mut self, valid_until: tokio::time::Instant) {
        let deadline = Deadline::from_instant(valid_until).minus(self.margin);
        self.send(ToSupervisor::Deadline(deadline)).await;
    }

    /// Forwards `signal` to the command's process group.
    pub async fn signal(&mut self, signal: Signal) {
        self.send(ToSupervisor::Signal(signal as i32)).await;
    }

    /// The lease is lost: the command is stopped (TERM, then KILL after the grace).
    pub async fn stop(&mut self) {
        self.send(ToSupervisor::Stop).await;
    }

    /// What `lock` does itself when the supervisor is gone: stops the command's group, TERM,
    /// then KILL after `grace`.
    pub async fn stop_without_supervisor(&self, grace: Duration) {
        if let Some(group) = self.group {
            let _ = killpg(group, Signal::SIGTERM);
            tokio::time::sleep(grace).await;
            let _ = killpg(group, Signal::SIGKILL);
        }
    }

    async fn send(&mut self, message: ToSupervisor) {
        // A supervisor gone shows in `next`.
        let _ = self.write.write_all(message.to_line().as_bytes()).await;
    }
}

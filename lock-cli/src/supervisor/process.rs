//! The supervisor process: starts the command, and stops it when `lock` goes away, when
//! `lock` says the lease is lost, or when the lease's deadline comes without a renewal, even
//! while `lock` itself is stopped. Single-threaded, synchronous: it is forked from `lock`
//! before `lock` starts any thread.

use std::ffi::OsString;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::deadline::now;
use super::message::{Deadline, FromSupervisor, ToSupervisor, Why};

/// How often a supervisor whose command has ended looks whether the rest of its process group
/// is gone too (only then, and only until the grace runs out).
const DRAIN_TICK: Duration = Duration::from_millis(5);

/// Runs the supervisor on `socket` (its end of the pair shared with `lock`) and exits.
pub(super) fn run(socket: UnixStream, name: &str, command: &[OsString]) -> ! {
    // Out of `lock`'s process group, so that a signal to that whole group (a terminal's, a job
    // control's, a `kill -9 -PGID`) does not take the supervisor with it; and the parent of
    // every orphan the command leaves, so that it can reap them and know when all are gone.
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let mut inbox = Inbox::new(socket);
    let Some((
        ToSupervisor::Start {
            token,
            deadline,
            grace,
            hand_down,
        },
        tie,
    )) = inbox.first()
    else {
        // `lock` ended without starting the command (not taken, interrupted): nothing to do.
        std::process::exit(0);
    };
    if let Some(tie) = tie.as_ref().filter(|_| !hand_down) {
        // Kept here alone: closed on exec, so the command does not inherit it.
        let _ = nix::fcntl::fcntl(
            tie,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let child = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("LOCK_NAME", name)
        .env("LOCK_FENCING_TOKEN", token.to_string())
        // Its own process group, so that stopping it stops what it started too. A tie handed
        // down is not close-on-exec, so it is inherited: the lease stands until every process
        // holding it is gone. The supervisor keeps its own copy until the group is gone.
        .process_group(0)
        .spawn();
    let pid = match child {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(e) => {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let message = format!("cannot start {:?}: {e}", command[0]);
            inbox.send(&FromSupervisor::Failed { code, message });
            std::process::exit(0);
        }
    };
    inbox.send(&FromSupervisor::Started { pid: pid.as_raw() });
    let mut watch = Watch {
        name,
        group: pid,
        deadline,
        grace,
        term_sent: None,
        kill_sent: false,
        why: Why::Itself,
        status: None,
    };
    let code = watch.run(&mut inbox);
    drop(tie);
    inbox.send(&FromSupervisor::Exited {
        code,
        why: watch.why,
    });
    std::process::exit(0);
}

/// The command's process group, and when to stop it.
struct Watch<'a> {
    name: &'a str,
    /// The command's pid, which is its process group's id.
    group: Pid,
    /// KILL lands by then, unless a renewal moves it.
    deadline: Deadline,
    grace: Duration,
    term_sent: Option<Deadline>,
    kill_sent: bool,
    why: Why,
    /// The command's exit code, once it has ended.
    status: Option<u8>,
}

impl Watch<'_> {
    /// Until the command and the rest of its group are gone; gives the command's exit code.
    fn run(&mut self, inbox: &mut Inbox) -> u8 {
        let pidfd = pidfd_open(self.group);
        loop {
            self.reap();
            if let Some(code) = self.status {
                if group_gone(self.group) {
                    return code;
                }
                // What the command left running in its group goes too.
                self.term(Why::Itself);
            }
            let at = now();
            if self.term_sent.is_none() && at >= self.term_at() {
                say!(
                    "lock: {}: no renewal got through in time; stopping the command before the \
                     lease can lapse (TERM, then KILL)",
                    self.name
                );
                self.term(Why::Deadline);
            }
            if !self.kill_sent && at >= self.kill_at() {
                let _ = killpg(self.group, Signal::SIGKILL);
                self.kill_sent = true;
            }
            let mut wait = self.next_timer().map_or(Duration::MAX, |t| t.since(at));
            if self.status.is_some() || pidfd.is_none() {
                wait = wait.min(DRAIN_TICK);
            }
            let mut fds = Vec::with_capacity(2);
            if !inbox.closed {
                fds.push(PollFd::new(inbox.socket.as_fd(), PollFlags::POLLIN));
            }
            if let Some(pidfd) = pidfd.as_ref().filter(|_| self.status.is_none()) {
                fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
            }
            let timeout = PollTimeout::try_from(wait.as_millis().min(60_000) as i32 + 1)
                .unwrap_or(PollTimeout::MAX);
            let socket_ready = match poll(&mut fds, timeout) {
                Ok(_) => !inbox.closed && fds[0].any().unwrap_or(true),
                Err(_) => false,
            };
            if socket_ready {
                for message in inbox.read() {
                    self.on(message);
                }
                if inbox.closed {
                    // `lock` is gone (killed, crashed): the command must not outlive it.
                    self.term(Why::Stopped);
                }
            }
        }
    }

    fn on(&mut self, message: ToSupervisor) {
        match message {
            // Once told to stop, the command stops: a later renewal does not take it back.
            ToSupervisor::Deadline(d) if self.term_sent.is_none() => self.deadline = d,
            ToSupervisor::Signal(s) => {
                if let Ok(signal) = Signal::try_from(s) {
                    let _ = killpg(self.group, signal);
                }
            }
            ToSupervisor::Stop => self.term(Why::Stopped),
            ToSupervisor::Deadline(_) | ToSupervisor::Start { .. } => {}
        }
    }

    /// Sends TERM to the group, once; KILL follows after the grace (or at the deadline).
    fn term(&mut self, why: Why) {
        if self.term_sent.is_some() {
            return;
        }
        if self.why == Why::Itself {
            self.why = why;
        }
        let _ = killpg(self.group, Signal::SIGTERM);
        self.term_sent = Some(now());
    }

    fn term_at(&self) -> Deadline {
        self.deadline.minus(self.grace)
    }

    fn kill_at(&self) -> Deadline {
        match self.term_sent {
            Some(sent) => sent.plus(self.grace).min(self.deadline),
            None => self.deadline,
        }
    }

    fn next_timer(&self) -> Option<Deadline> {
        let term = self.term_sent.is_none().then(|| self.term_at());
        let kill = (!self.kill_sent).then(|| self.kill_at());
        term.into_iter().chain(kill).min()
    }

    /// Reaps every child that ended: the command (its code kept) and the orphans of its group.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == self.group => {
                    self.status = Some(code as u8);
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == self.group => {
                    self.status = Some(128 + signal as u8);
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// Whether no process is left in `group` (its ended members reaped).
fn group_gone(group: Pid) -> bool {
    killpg(group, None) == Err(Errno::ESRCH)
}

/// A descriptor that becomes readable when `pid` ends; `None` on kernels without `pidfd_open`
/// (before Linux 5.3), where the supervisor looks every few milliseconds instead.
fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `pidfd_open` takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid.as_raw(), 0) };
        // SAFETY: a non-negative result is a descriptor this process now owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// The supervisor's end of the socket: messages in, lines out.
struct Inbox {
    socket: UnixStream,
    pending: Vec<u8>,
    closed: bool,
}

impl Inbox {
    fn new(socket: UnixStream) -> Self {
        Self {
            socket,
            pending: Vec::new(),
            closed: false,
        }
    }

    /// Waits for the first message, and the descriptor sent with it; `None` when `lock` closed
    /// the socket first.
    fn first(&mut self) -> Option<(ToSupervisor, Option<OwnedFd>)> {
        let mut buf = [0u8; 512];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (bytes, fd) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let mut fd = None;
                    for cmsg in msg.cmsgs().ok()? {
                        if let ControlMessageOwned::ScmRights(fds) = cmsg {
                            for raw in fds {
                                // SAFETY: a descriptor passed to us is ours to own.
                                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                                fd.get_or_insert(owned);
                            }
                        }
                    }
                    break (msg.bytes, fd);
                }
                Err(Errno::EINTR) => {}
                Err(_) => return None,
            }
        };
        if bytes == 0 {
            return None;
        }
        self.pending.extend_from_slice(&buf[..bytes]);
        // The rest of the line, should it come apart.
        while !self.pending.contains(&b'\n') {
            let mut more = [0u8; 512];
            match std::io::Read::read(&mut self.socket, &mut more) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&more[..n]),
            }
        }
        let first = self.lines().into_iter().next()?;
        Some((first, fd))
    }

    /// What has come since the last read (without blocking); marks the inbox closed at the end.
    fn read(&mut self) -> Vec<ToSupervisor> {
        let mut buf = [0u8; 4096];
        match nix::sys::socket::recv(self.socket.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => self.closed = true,
            Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.closed = true,
        }
        self.lines()
    }

    fn lines(&mut self) -> Vec<ToSupervisor> {
        let mut out = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(m) = std::str::from_utf8(&line)
                .ok()
                .and_then(ToSupervisor::parse)
            {
                out.push(m);
            }
        }
        out
    }

    /// Best effort: `lock` may be gone.
    fn send(&mut self, message: &FromSupervisor) {
        let _ = nix::sys::socket::send(
            self.socket.as_raw_fd(),
            message.to_line().as_bytes(),
            MsgFlags::MSG_NOSIGNAL,
        );
    }
}

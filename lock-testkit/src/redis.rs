//! A throw-away `redis-server`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::binaries::find_binary;
use crate::ports;
use crate::process::ServerProcess;
use crate::startup::{self, Attempt, LogMark, Startup};

/// How long `redis-server` may take to answer its first PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What `redis-server` logs once it listens; proves the server on the port is ours.
const READY_SIGN: &str = "Ready to accept connections";

/// A `redis-server` of our own on a free 127.0.0.1 port, without persistence.
///
/// It runs as a direct child of the test process with its working directory and log in a
/// temporary directory. Dropping it kills the server and removes the directory; if the test
/// process dies, the kernel kills the server too (`PR_SET_PDEATHSIG`).
///
/// Nothing is ever saved to disk (`--save "" --appendonly no`): [`kill`](Self::kill) followed
/// by [`restart`](Self::restart) is a server that lost all its data.
pub struct RedisServer {
    process: Option<ServerProcess>,
    port: u16,
    extra_args: Vec<String>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not installed, or does not get ready within 10 s (the message
    /// quotes its log).
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// Like [`start`](Self::start), with more command-line arguments for `redis-server`,
    /// e.g. `["--requirepass", "s3cret"]`. [`restart`](Self::restart) passes them again.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_args(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lock-testkit-redis-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a temporary directory: {err}"));
        let mut server = Self {
            process: None,
            port: 0,
            extra_args: args.iter().map(|arg| arg.to_string()).collect(),
            dir,
        };
        let (port, process) =
            startup::start_on_free_port("redis-server", |port| server.launch(port));
        server.port = port;
        server.process = Some(process);
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The temporary directory holding the server's working files and `redis.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL and reaps it: a crash. Connections are refused until
    /// [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Stops the server with SIGSTOP: connections are still accepted by the kernel, but
    /// nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) {
        if let Some(process) = &self.process {
            process.signal(Signal::SIGSTOP);
        }
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        if let Some(process) = &self.process {
            process.signal(Signal::SIGCONT);
        }
    }

    /// Kills the server if it runs, then starts a new, empty one on the same port with the
    /// same arguments, and waits until it answers.
    ///
    /// # Panics
    ///
    /// If the port stays taken for 10 s, or the server does not get ready.
    pub fn restart(&mut self) {
        self.kill();
        let process = startup::start_on_port("redis-server", self.port, |port| self.launch(port));
        self.process = Some(process);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn launch(&self, port: u16) -> Attempt {
        let dir = self.dir.path();
        let log = self.log_path();
        let mut command = Command::new(find_binary("redis-server", &["/usr/bin".into()]));
        command
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no"])
            .args(&self.extra_args)
            .current_dir(dir);
        let startup = Startup {
            what: format!("redis-server on port {port}"),
            log: LogMark::at_end_of(&log),
            timeout: READY_TIMEOUT,
            busy_signs: &["Address already in use"],
        };
        let process = ServerProcess::spawn(command, &log);
        startup.wait(process, |log| {
            log.text().contains(READY_SIGN) && answers_ping(port)
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True if the server on `port` answers a PING with any reply: `+PONG`, or an error such as
/// `-NOAUTH` or `-LOADING` that still shows it is up.
fn answers_ping(port: u16) -> bool {
    let timeout = Duration::from_millis(200);
    let Ok(mut stream) = ports::connect(port, timeout) else {
        return false;
    };
    let mut reply = [0u8; 64];
    stream.set_read_timeout(Some(timeout)).is_ok()
        && stream.write_all(b"PING\r\n").is_ok()
        && stream
            .read(&mut reply)
            .is_ok_and(|len| len > 0 && matches!(reply[0], b'+' | b'-'))
}

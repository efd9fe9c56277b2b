//! Waiting for a server to come up, and starting it again when its port was taken.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{POLL, ServerProcess};

/// How many lines of a server's log a failure message quotes.
const TAIL_LINES: usize = 30;

/// How long a restart waits for the previous server's port to be released.
const RESTART_PATIENCE: Duration = Duration::from_secs(10);

/// A server's log file, read from where one start attempt began.
pub(crate) struct LogMark {
    path: PathBuf,
    offset: u64,
}

impl LogMark {
    /// Marks the current end of the log at `path` (which need not exist yet).
    pub(crate) fn at_end_of(path: &Path) -> Self {
        let offset = fs::metadata(path).map_or(0, |meta| meta.len());
        Self {
            path: path.to_path_buf(),
            offset,
        }
    }

    /// What was written to the log since the mark.
    pub(crate) fn text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.path) {
            let mut bytes = Vec::new();
            if file.seek(SeekFrom::Start(self.offset)).is_ok() {
                let _ = file.read_to_end(&mut bytes);
            }
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }

    /// The last lines written since the mark, for failure messages.
    pub(crate) fn tail(&self) -> String {
        let text = self.text();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
        format!("last lines of {}:\n{tail}", self.path.display())
    }
}

/// How one attempt to start a server ended.
pub(crate) enum Attempt {
    /// It is up and answering.
    Ready(ServerProcess),
    /// It exited because its port (or another resource) was still taken: try again. With
    /// the end of its log, for the message when it stays taken.
    Busy(String),
    /// It failed for good; the message says why and quotes the log.
    Failed(String),
}

/// What to wait for after spawning a server.
pub(crate) struct Startup<'a> {
    /// The server, for messages: "redis-server on port 1234".
    pub(crate) what: String,
    /// Where its log began for this attempt.
    pub(crate) log: LogMark,
    /// How long it may take to become ready.
    pub(crate) timeout: Duration,
    /// Log text that means the server exited because something was still taken.
    pub(crate) busy_signs: &'a [&'a str],
}

impl Startup<'_> {
    /// Waits until `is_ready` (shown the log written so far) says yes while the process is
    /// still running.
    ///
    /// A process that does not get ready in time is killed.
    pub(crate) fn wait(
        self,
        mut process: ServerProcess,
        mut is_ready: impl FnMut(&LogMark) -> bool,
    ) -> Attempt {
        let deadline = Instant::now() + self.timeout;
        loop {
            if process.has_exited() {
                let log = self.log.text();
                if self.busy_signs.iter().any(|sign| log.contains(sign)) {
                    return Attempt::Busy(self.log.tail());
                }
                return Attempt::Failed(format!(
                    "{} exited while starting; {}",
                    self.what,
                    self.log.tail()
                ));
            }
            if is_ready(&self.log) {
                return Attempt::Ready(process);
            }
            if Instant::now() >= deadline {
                process.kill();
                return Attempt::Failed(format!(
                    "{} was not ready within {:?}; {}",
                    self.what,
                    self.timeout,
                    self.log.tail()
                ));
            }
            thread::sleep(POLL);
        }
    }
}

/// Starts a server on a free port, and on another one if that was taken meanwhile.
///
/// # Panics
///
/// With `launch`'s message when it fails for good.
pub(crate) fn start_on_free_port(
    what: &str,
    mut launch: impl FnMut(u16) -> Attempt,
) -> (u16, ServerProcess) {
    const TRIES: usize = 5;
    for _ in 0..TRIES {
        let port = free_port();
        match launch(port) {
            Attempt::Ready(process) => return (port, process),
            Attempt::Busy(_) => continue,
            Attempt::Failed(message) => panic!("{message}"),
        }
    }
    panic!("{what}: {TRIES} free ports in a row were taken before it could bind them")
}

/// Starts a server on `port` again, waiting a while for the previous one to let go of it.
///
/// # Panics
///
/// With `launch`'s message when it fails for good, or when the port stays taken.
pub(crate) fn start_on_port(
    what: &str,
    port: u16,
    mut launch: impl FnMut(u16) -> Attempt,
) -> ServerProcess {
    let deadline = Instant::now() + RESTART_PATIENCE;
    loop {
        match launch(port) {
            Attempt::Ready(process) => return process,
            Attempt::Busy(_) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100))
            }
            Attempt::Busy(log) => {
                panic!("{what}: port {port} was still taken after {RESTART_PATIENCE:?}; {log}")
            }
            Attempt::Failed(message) => panic!("{message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_taken_port_is_given_up_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let mut tried = Vec::new();
        let (port, _process) = start_on_free_port("sleep", |port| {
            tried.push(port);
            if tried.len() < 3 {
                return Attempt::Busy(String::new());
            }
            let mut sleep = Command::new("sleep");
            sleep.arg("10");
            Attempt::Ready(ServerProcess::spawn(sleep, &dir.path().join("log")))
        });
        assert_eq!(tried.len(), 3);
        assert_eq!(port, tried[2]);
    }
}

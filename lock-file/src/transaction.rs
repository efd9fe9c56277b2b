//! The transaction engine: one operation on one name, under the lock file's `flock`.
//!
//! [`FileLock::transact`] opens the lock file, takes its `flock`, reads the record (and the
//! line file, when the operation asks for it), hands them to the operation's decision as a
//! [`Txn`], and writes what the decision changed: the line first, then the record, then, when
//! the record leaves the name open, the signal that wakes waiters. Decisions only decide.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::{FileExt, TryLockError};
use lock_core::{Error, HolderTie, LockName, Operation};

use crate::FileLock;
use crate::lease::Now;
use crate::line::{self, Line, LineError};
use crate::record::{MAX_FILE_LEN, RECORD_LEN, Record};
use crate::{dir, failed, io, tie};

/// What an operation may do to a name's files.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Only read the lock file (inspect), so that it works on a read-only file system too.
    Read,
    /// Read and rewrite the lock file, if it exists.
    Write,
    /// Create the lock file when missing, then read and rewrite it.
    Create,
}

/// One operation's view of a name under its `flock`: the record as read, the line (read on
/// first use), the clock, and what the decision wants written.
pub(crate) struct Txn<'a> {
    op: Operation,
    name: &'a LockName,
    path: &'a Path,
    /// `Err` with what is wrong for content this library did not write.
    stored: Result<Option<Record>, String>,
    line: Option<Line>,
    write: Option<Record>,
    /// The system clock once the `flock` is held.
    pub(crate) now: Now,
}

impl Txn<'_> {
    /// The record as read, `None` for a name never acquired.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the lock file when it holds foreign or garbled content.
    pub(crate) fn record(&self) -> Result<Option<&Record>, Error> {
        match &self.stored {
            Ok(record) => Ok(record.as_ref()),
            Err(detail) => Err(corrupt(self.name, self.path, detail)),
        }
    }

    /// Whether the lock file holds content this library did not write.
    pub(crate) fn is_corrupt(&self) -> bool {
        self.stored.is_err()
    }

    /// The name's line, read from its file on first use.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for something other than a line file there; [`Error::Backend`] when
    /// it cannot be read.
    pub(crate) fn line(&mut self) -> Result<&mut Line, Error> {
        if self.line.is_none() {
            let path = line::path_of(self.path);
            let line = Line::read(&path).map_err(|e| line_error(self.op, self.name, &path, e))?;
            self.line = Some(line);
        }
        Ok(self.line.as_mut().expect("read above"))
    }

    /// Writes `record` when the decision is made.
    pub(crate) fn write(&mut self, record: Record) {
        self.write = Some(record);
    }

    /// Writes the record back as it was read, so that, if it leaves the name open, the
    /// waiters look again (see `signal_opening`).
    pub(crate) fn rewrite(&mut self) {
        self.write = self.stored.clone().ok().flatten();
    }

    /// Ties the lease of fencing token `token` to this process ([`tie`]).
    pub(crate) fn tie(&self, token: u64) -> Result<HolderTie, Error> {
        tie::take(self.path, token)
            .map(HolderTie::from_fd)
            .map_err(|e| {
                failed(
                    self.op,
                    format!("cannot tie lock file {}", self.path.display()),
                    e,
                )
            })
    }
}

fn corrupt(name: &LockName, path: &Path, detail: &str) -> Error {
    lock_core::raw::corrupt(name, path.display(), detail)
}

/// The line error as the crate's error, naming the line file.
fn line_error(op: Operation, name: &LockName, path: &Path, e: LineError) -> Error {
    match e {
        LineError::Foreign(detail) => corrupt(name, path, &detail),
        LineError::Io(what, e) => {
            failed(op, format!("cannot {what} line file {}", path.display()), e)
        }
    }
}

/// How [`attempt`] takes the file's `flock`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flock {
    /// Only if it is free now; otherwise give the decision back untouched.
    Try,
    /// Waiting as long as another process holds it (microseconds, normally).
    Wait,
}

/// What [`attempt`] did: the operation's answer, or nothing because the `flock` was taken
/// (with [`Flock::Try`]), handing the decision back to be made after waiting.
enum Step<T, F> {
    Done(T),
    Busy(F),
}

impl FileLock {
    /// Runs `decide` on `name`'s files under the lock file's exclusive `flock`, and writes
    /// what it changed. Only [`Access::Create`] makes a missing file (and its directories).
    ///
    /// The operation runs on the calling thread when the `flock` is free at once: a few
    /// system calls on a file in the page cache, far cheaper than the two thread switches of
    /// a trip to the blocking pool. Only when another process holds the `flock` does it move
    /// to the blocking pool to wait for it.
    pub(crate) async fn transact<T: Send + 'static>(
        &self,
        op: Operation,
        name: &LockName,
        access: Access,
        decide: impl FnOnce(&mut Txn<'_>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let path = self.path_of(name);
        let _turn = self.turn(&path).lock().await;
        let dir = self.dir();
        let decide = match attempt(op, dir, &path, name, access, Flock::Try, decide)? {
            Step::Done(out) => return Ok(out),
            Step::Busy(decide) => decide,
        };
        let (dir, name): (PathBuf, LockName) = (dir.to_owned(), name.clone());
        tokio::task::spawn_blocking(move || {
            match attempt(op, &dir, &path, &name, access, Flock::Wait, decide)? {
                Step::Done(out) => Ok(out),
                Step::Busy(_) => unreachable!("a waiting flock is never busy"),
            }
        })
        .await
        .map_err(|e| {
            Error::backend(
                crate::BACKEND,
                op,
                "a lock file operation panicked",
                Some(e.into()),
            )
        })?
    }
}

/// One try at the transaction; with [`Flock::Try`], gives `decide` back when another process
/// holds the `flock`.
fn attempt<T, F>(
    op: Operation,
    dir: &Path,
    path: &Path,
    name: &LockName,
    access: Access,
    flock: Flock,
    decide: F,
) -> Result<Step<T, F>, Error>
where
    F: FnOnce(&mut Txn<'_>) -> Result<T, Error>,
{
    let io_error = |what: &str, e: std::io::Error| {
        failed(op, format!("cannot {what} lock file {}", path.display()), e)
    };
    if access == Access::Create
        && let Some(parent) = path.parent().filter(|p| *p != dir)
    {
        dir::ensure(parent, op)?;
    }
    let file = match open(path, access) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && access != Access::Create => {
            // Never acquired: decide on nothing, and there is nothing to write to.
            let mut txn = Txn {
                op,
                name,
                path,
                stored: Ok(None),
                line: None,
                write: None,
                now: Now::read(),
            };
            let out = decide(&mut txn)?;
            debug_assert!(txn.write.is_none(), "only try acquire creates lock files");
            return Ok(Step::Done(out));
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            let detail = "a symbolic link stands there; it is never followed";
            return Err(corrupt(name, path, detail));
        }
        Err(e) => return Err(io_error("open", e)),
    };
    match flock {
        Flock::Wait => wait_for_flock(op, &file, path)?,
        Flock::Try => match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(Step::Busy(decide)),
            Err(TryLockError::Error(e)) => return Err(io_error("lock", e)),
        },
    }
    // Under the lock, so the length read is the one this operation overwrites. One read up to
    // a byte past the longest lock record tells content and length, without a `stat`.
    let bytes = match io::read_up_to(&file, MAX_FILE_LEN as usize + 1) {
        Ok(bytes) => bytes,
        // A FIFO, a directory opened to inspect: `pread` refuses them.
        Err(e) => match file.metadata() {
            Ok(meta) if !meta.is_file() => {
                return Err(corrupt(name, path, "not a regular file"));
            }
            _ => return Err(io_error("read", e)),
        },
    };
    let len = bytes.len() as u64;
    let now = Now::read();
    let stored = if len > MAX_FILE_LEN {
        let len = file.metadata().map_or(len, |m| m.len());
        Err(format!("{len} bytes, more than a lock record"))
    } else {
        match Record::parse(&bytes) {
            Ok(Some(record)) => Ok(Some(
                ended_if_untied(record, &file, now.ms).map_err(|e| io_error("check ties on", e))?,
            )),
            other => other,
        }
    };
    let mut txn = Txn {
        op,
        name,
        path,
        stored,
        line: None,
        write: None,
        now,
    };
    let out = decide(&mut txn)?;
    if let Some(line) = &txn.line {
        let line_path = line::path_of(path);
        line.write(&line_path)
            .map_err(|e| line_error(op, name, &line_path, e))?;
    }
    if let Some(record) = txn.write {
        debug_assert!(access != Access::Read, "inspect never writes");
        if len < RECORD_LEN as u64 {
            // Reserve the record's blocks first: a full disk then fails here, before a byte
            // of the old record is overwritten.
            FileExt::allocate(&file, RECORD_LEN as u64).map_err(|e| io_error("allocate", e))?;
        }
        std::os::unix::fs::FileExt::write_all_at(&file, &record.to_bytes(), 0)
            .map_err(|e| io_error("write", e))?;
        if len > RECORD_LEN as u64 {
            file.set_len(RECORD_LEN as u64)
                .map_err(|e| io_error("truncate", e))?;
        }
        if record.live_owner(now.ms).is_none() {
            signal_opening(&file, path);
        }
    }
    // Closing the file releases the flock (if an opening has not already).
    Ok(Step::Done(out))
}

/// A tied lease whose ties are all closed has ended: read as expired, so that every decision
/// treats it as a lease that ran out (a new grant gets the next token).
fn ended_if_untied(mut record: Record, file: &File, now_ms: u64) -> std::io::Result<Record> {
    if record.tied && record.live_owner(now_ms).is_some() && !tie::held(file, record.token)? {
        record.expires_ms = 0;
    }
    Ok(record)
}

/// Tells the processes waiting on lock file `file` (at `path`) that the record just written
/// leaves the name open (a release, a force release, a waiter leaving the line of an open
/// name): their watchers listen for a change of its attributes, not for writes, so that a
/// grant or a renewal wakes no one. The `flock` goes first, so that the waiter woken never
/// finds it still held by this operation. Setting the times to now is an `IN_ATTRIB` event
/// that any process allowed to write the file can make.
///
/// A failure changes nothing but the wake-up: the waiters look again at their next keeping
/// of their place (within 200 ms) or at the lease's end, as they do after any missed wake-up.
fn signal_opening(file: &File, path: &Path) {
    use nix::sys::time::TimeSpec;
    // Closing the file releases the flock anyway; unlocking first only makes it sooner.
    let _ = FileExt::unlock(file);
    if let Err(e) = nix::sys::stat::futimens(file, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_NOW) {
        tracing::warn!(file = %path.display(), error = %e, "cannot tell waiters the lock is open; they look again within 200 ms");
    }
}

/// How long an operation waits for another process to let go of a lock file's `flock`. An
/// operation holds it for microseconds; one held this long belongs to a process that was
/// stopped (`SIGSTOP`, a debugger, a frozen cgroup) in the middle of an operation, and waiting
/// on would stop every other process's operations on that name, waiters' deadlines included.
const FLOCK_PATIENCE: Duration = Duration::from_secs(2);

/// The first pause of [`wait_for_flock`]: an operation holds the `flock` for tens of
/// microseconds, so most waits end at the first look again.
const FIRST_FLOCK_PAUSE: Duration = Duration::from_micros(25);

/// Takes `file`'s `flock`, polling (25 µs doubling to 16 ms) for at most [`FLOCK_PATIENCE`].
fn wait_for_flock(op: Operation, file: &File, path: &Path) -> Result<(), Error> {
    let deadline = std::time::Instant::now() + FLOCK_PATIENCE;
    let mut pause = FIRST_FLOCK_PAUSE;
    loop {
        match FileExt::try_lock(file) {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(16));
            }
            Err(TryLockError::WouldBlock) => {
                let message = format!(
                    "lock file {} has been held by another process's operation for over {:?}; \
                     is that process stopped?",
                    path.display(),
                    FLOCK_PATIENCE
                );
                return Err(Error::unreachable(crate::BACKEND, op, message, None));
            }
            Err(TryLockError::Error(e)) => {
                return Err(failed(
                    op,
                    format!("cannot lock lock file {}", path.display()),
                    e,
                ));
            }
        }
    }
}

fn open(path: &Path, access: Access) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(access != Access::Read)
        .create(access == Access::Create)
        .mode(0o600)
        // Never follow a link planted at the path; never block on a FIFO planted there.
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
}

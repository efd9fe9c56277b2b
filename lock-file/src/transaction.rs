//! The transaction engine: one operation on one name, under the lock file's `flock`.
//!
//! [`FileLock::transact`] opens the lock file, takes its `flock`, reads the record (and the
//! line file, when the operation asks for it), hands them to the operation's decision as a
//! [`Txn`], and writes what the decision changed: the line first, then the record, then, when
//! the write frees room (a lease ended, or a waiter left the line), the signal that wakes
//! waiters. Decisions only decide.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fs4::{FileExt, TryLockError};
use lock_core::{Error, HolderTie, LockName, Operation};

use crate::FileLock;
use crate::lease::Now;
use crate::line::{self, Line, LineError};
use crate::record::{FIRST_READ, MAX_FILE_LEN, RECORD_LEN, Record};
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
    /// Whether the write is to wake the waiters even if it ends no lease (a place left).
    signal: bool,
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

    /// Writes the record back as it was read, so that the waiters look again whether the
    /// room the name has is now theirs (see `signal_opening`).
    pub(crate) fn rewrite(&mut self) {
        self.write = self.stored.clone().ok().flatten();
        self.signal = true;
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
                signal: false,
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
    // a byte past 4 KiB tells content and length of every record of one lease, without a
    // `stat`; a longer file (a crowd of permits) takes a second.
    let bytes = match io::read_whole(&file, FIRST_READ, MAX_FILE_LEN) {
        Ok(bytes) => bytes,
        // A FIFO, a directory opened to inspect: `pread` refuses them.
        Err(e) => match file.metadata() {
            Ok(meta) if !meta.is_file() => {
                return Err(corrupt(name, path, "not a regular file"));
            }
            _ => return Err(io_error("read", e)),
        },
    };
    let now = Now::read();
    let (len, stored) = match bytes {
        Err(len) => (len, Err(format!("{len} bytes, more than a lock record"))),
        Ok(bytes) => (
            bytes.len() as u64,
            match Record::parse(&bytes) {
                Ok(Some(record)) => Ok(Some(
                    ended_if_untied(record, &file, now.ms)
                        .map_err(|e| io_error("check ties on", e))?,
                )),
                other => other,
            },
        ),
    };
    let mut txn = Txn {
        op,
        name,
        path,
        stored,
        line: None,
        write: None,
        signal: false,
        now,
    };
    let out = decide(&mut txn)?;
    if let Some(line) = &txn.line {
        let line_path = line::path_of(path);
        line.write(&line_path)
            .map_err(|e| line_error(op, name, &line_path, e))?;
    }
    if let Some(record) = &txn.write {
        debug_assert!(access != Access::Read, "inspect never writes");
        let mut bytes = record.to_bytes(0);
        let need = bytes.len() as u64;
        let mut cut = false;
        if len < need {
            // Reserve the record's blocks first: a full disk then fails here, before a byte
            // of the old record is overwritten.
            FileExt::allocate(&file, need).map_err(|e| io_error("allocate", e))?;
        } else if len > need {
            // Foreign content is cut at once. A file grown by a crowd of leases keeps its
            // length, the record padded over all of it in the one write, until the record fits
            // one block again: then it is cut back to one, its content whole before and after.
            let foreign = txn.stored.is_err();
            if !foreign {
                bytes = record.to_bytes(len as usize);
            }
            cut = foreign || need == RECORD_LEN as u64;
        }
        std::os::unix::fs::FileExt::write_all_at(&file, &bytes, 0)
            .map_err(|e| io_error("write", e))?;
        if cut {
            file.set_len(need).map_err(|e| io_error("truncate", e))?;
        }
        let before = txn.stored.as_ref().ok().and_then(Option::as_ref);
        if txn.signal || frees_room(before, record, now.ms) {
            signal_opening(&file, path);
        }
    }
    // Closing the file releases the flock (if an opening has not already).
    Ok(Step::Done(out))
}

/// A tied lease whose ties are all closed has ended: read as expired, so that every decision
/// treats it as a lease that ran out (a new grant gets the next token). Each lease has its own
/// tie, asked after for each live tied lease.
fn ended_if_untied(mut record: Record, file: &File, now_ms: u64) -> std::io::Result<Record> {
    for lease in &mut record.leases {
        if lease.tied && lease.live(now_ms) && !tie::held(file, lease.token)? {
            lease.expires_ms = 0;
        }
    }
    Ok(record)
}

/// Whether writing `after` over `before` frees room on the name: it leaves no live lease, or a
/// lease live before is not live after (a release, a force release).
fn frees_room(before: Option<&Record>, after: &Record, now_ms: u64) -> bool {
    if !after.is_held(now_ms) {
        return true;
    }
    let Some(before) = before else {
        return false;
    };
    let mut kept: Vec<u64> = after.live(now_ms).map(|l| l.token).collect();
    kept.sort_unstable();
    before
        .live(now_ms)
        .any(|l| kept.binary_search(&l.token).is_err())
}

/// Tells the processes waiting on lock file `file` (at `path`) that the record just written
/// frees room (a release, a force release, a waiter leaving the line): their watchers listen
/// for a change of its attributes, not for writes, so that a grant or a renewal wakes no one,
/// and wake the waiters the room can serve. The `flock` goes first, so that the waiter woken never
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

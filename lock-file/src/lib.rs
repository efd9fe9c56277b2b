#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod dir;
mod io;
mod line;
mod path;
mod record;
mod watcher;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fs4::{FileExt, TryLockError};
use lock_core::{
    AcquireOutcome, Capabilities, ChangeFuture, Error, FencingToken, Holder, InLineOutcome, Lease,
    Lock, LockName, LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

pub use dir::default_dir;
use line::{Line, LineError};
use record::{MAX_FILE_LEN, RECORD_LEN, Record};

/// Locks as files in one directory: one lease file per name, read and written under an
/// exclusive `flock` for the few microseconds each operation takes.
///
/// See the crate documentation for the file layout and the guarantees.
#[derive(Debug, Clone)]
pub struct FileLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    watcher: watcher::Watcher,
    /// One turn at a time per lock file within this handle: see [`Inner::turn`].
    turns: Box<[tokio::sync::Mutex<()>]>,
}

/// How many turnstiles a handle keeps; names share one when their paths hash alike.
const TURNS: usize = 256;

impl Inner {
    /// The turnstile of the lock file at `path`. Operations of one handle on one file take
    /// turns here (first come, first served) rather than at the `flock`: there, the loser of
    /// a race within the process would go to the blocking pool and poll, and a crowd of
    /// waiters woken at once by a release would poll each other out, the next in line
    /// included. Only other processes' operations are met at the `flock`.
    fn turn(&self, path: &Path) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(path);
        &self.turns[(hash % TURNS as u64) as usize]
    }
}

impl FileLock {
    /// Locks in `dir`, which is created with mode `0700` when missing.
    ///
    /// # Errors
    /// [`Error::Backend`] when the directory cannot be created or is not a directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        dir::ensure(&dir)?;
        Ok(Self::at(dir))
    }

    /// Locks in a directory that must be private to the current user: created `0700` when
    /// missing, refused when another user owns it or others may read it.
    ///
    /// # Errors
    /// [`Error::Backend`] saying why the directory was refused.
    pub fn private(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        dir::ensure_private(&dir)?;
        Ok(Self::at(dir))
    }

    fn at(dir: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir,
                watcher: watcher::Watcher::default(),
                turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            }),
        }
    }

    /// The lock directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file that holds `name`'s lease.
    pub fn path_of(&self, name: &LockName) -> PathBuf {
        self.inner.dir.join(path::relative_path(name))
    }

    /// Runs `decide` on `name`'s stored record under the file's exclusive lock, and writes the
    /// record it returns, if any. Only [`Access::Create`] makes a missing file (and its
    /// directories).
    ///
    /// The operation runs on the calling thread when the `flock` is free at once: a few
    /// system calls on a file in the page cache, far cheaper than the two thread switches of
    /// a trip to the blocking pool (which made up most of an uncontended cycle). Only when
    /// another process holds the `flock` does it move to the blocking pool to wait for it.
    async fn transact<T: Send + 'static>(
        &self,
        name: &LockName,
        access: Access,
        decide: impl FnOnce(Stored, Now) -> Result<(T, Option<Record>), Error> + Send + 'static,
    ) -> Result<T, Error> {
        let path = self.path_of(name);
        let _turn = self.inner.turn(&path).lock().await;
        let decide = match transact(&self.inner.dir, &path, name, access, Flock::Try, decide)? {
            Step::Done(out) => return Ok(out),
            Step::Busy(decide) => decide,
        };
        let dir = self.inner.dir.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || {
            match transact(&dir, &path, &name, access, Flock::Wait, decide)? {
                Step::Done(out) => Ok(out),
                Step::Busy(_) => unreachable!("a waiting flock is never busy"),
            }
        })
        .await
        .map_err(|e| Error::backend("a lock file operation panicked", e))?
    }
}

/// How [`transact`] takes the file's `flock`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flock {
    /// Only if it is free now; otherwise give `decide` back untouched.
    Try,
    /// Waiting as long as another process holds it (microseconds, normally).
    Wait,
}

/// What [`transact`] did: the operation's answer, or nothing because the `flock` was taken
/// (with [`Flock::Try`]), handing the decision back to be made after waiting.
enum Step<T, F> {
    Done(T),
    Busy(F),
}

/// What an operation may do to the lock file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Only read it (inspect), so that it works on a read-only file system too.
    Read,
    /// Read and rewrite it, if it exists.
    Write,
    /// Create it when missing, then read and rewrite it.
    Create,
}

/// A record as read: `Ok(None)` for a name never acquired, `Err` with what is wrong for
/// content this library did not write.
type Stored = Result<Option<Record>, String>;

/// The system clock at the moment an operation holds the file.
#[derive(Clone, Copy)]
struct Now {
    ms: u64,
    micros: u64,
}

impl Now {
    fn read() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            ms: u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            micros: u64::try_from(since.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// The end of a lease of `ttl` granted now, in whole milliseconds rounded up: never
    /// before now + ttl, which is never before the client's send time + ttl (rounding down
    /// could end a lease up to a millisecond before its holder's guard stops trusting it).
    fn expiry(self, ttl: Ttl) -> u64 {
        self.micros.div_ceil(1000).saturating_add(ttl.as_millis())
    }

    /// The next fencing token after `last`. A name with no known last token (a new file, or
    /// one repaired from garbage) starts from the system clock in microseconds, which is
    /// above every token that name can have had, so tokens rise even when lock files are
    /// deleted.
    fn next_token(self, last: Option<u64>) -> FencingToken {
        let next = match last {
            Some(t) => t.saturating_add(1),
            None => self.micros.max(1),
        };
        FencingToken::new(next).expect("positive")
    }
}

fn corrupt(name: &LockName, path: &Path, detail: impl Into<String>) -> Error {
    lock_core::backend_kit::corrupt(name, path.display(), detail)
}

fn transact<T, F>(
    dir: &Path,
    path: &Path,
    name: &LockName,
    access: Access,
    flock: Flock,
    decide: F,
) -> Result<Step<T, F>, Error>
where
    F: FnOnce(Stored, Now) -> Result<(T, Option<Record>), Error>,
{
    let io_error = |what: &str, e: std::io::Error| {
        Error::backend(format!("cannot {what} lock file {}", path.display()), e)
    };
    if access == Access::Create
        && let Some(parent) = path.parent().filter(|p| *p != dir)
    {
        dir::ensure(parent)?;
    }
    let file = match open(path, access) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && access != Access::Create => {
            // Never acquired: decide on nothing, and there is nothing to write to.
            let (out, write) = decide(Ok(None), Now::read())?;
            debug_assert!(write.is_none(), "only try acquire creates lock files");
            return Ok(Step::Done(out));
        }
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(corrupt(
                name,
                path,
                "a symbolic link stands there; it is never followed",
            ));
        }
        Err(e) => return Err(io_error("open", e)),
    };
    match flock {
        Flock::Wait => wait_for_flock(&file, path)?,
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
            Ok(meta) if !meta.is_file() => return Err(corrupt(name, path, "not a regular file")),
            _ => return Err(io_error("read", e)),
        },
    };
    let len = bytes.len() as u64;
    let stored = if len > MAX_FILE_LEN {
        let len = file.metadata().map_or(len, |m| m.len());
        Err(format!("{len} bytes, more than a lock record"))
    } else {
        Record::parse(&bytes)
    };
    let now = Now::read();
    let (out, write) = decide(stored, now)?;
    if let Some(record) = write {
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

/// Tells the processes waiting on lock file `file` (at `path`) that the record just written
/// leaves the name open (a release, a force release, a waiter leaving the line of an open
/// name): their watchers listen for a change of its attributes, not for writes, so that a
/// grant or a renewal wakes no one. The `flock` goes first: the waiter woken then never finds
/// it still held by this operation, as it often did when the write itself woke the watchers
/// (a writer is preempted by the threads its write wakes, on a busy machine, and the waiter
/// lost its try and went to poll from the blocking pool). Setting the times to now is an
/// `IN_ATTRIB` event that any process allowed to write the file can make.
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
/// microseconds, so most waits end at the first look again. (A first pause of 1 ms made each
/// collision between two processes' operations cost a millisecond, most of a contended
/// handoff.)
const FIRST_FLOCK_PAUSE: Duration = Duration::from_micros(25);

/// Takes `file`'s `flock`, polling (25 µs doubling to 16 ms) for at most [`FLOCK_PATIENCE`].
fn wait_for_flock(file: &File, path: &Path) -> Result<(), Error> {
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
                return Err(Error::Unreachable {
                    message: format!(
                        "lock file {} has been held by another process's operation for over {:?}; \
                         is that process stopped?",
                        path.display(),
                        FLOCK_PATIENCE
                    ),
                    source: None,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::backend(
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

/// The stored record, or the corrupt-state error naming the file.
fn intact(stored: Stored, name: &LockName, path: &Path) -> Result<Option<Record>, Error> {
    stored.map_err(|detail| corrupt(name, path, detail))
}

/// The line error as the crate's error, naming the line file.
fn line_error(name: &LockName, path: &Path, e: LineError) -> Error {
    match e {
        LineError::Foreign(detail) => corrupt(name, path, detail),
        LineError::Io(what, e) => {
            Error::backend(format!("cannot {what} line file {}", path.display()), e)
        }
    }
}

/// Try acquire's decision on a stored record: the answer, and the record to write when
/// acquired (a new token when the name was open, the same one for the holder's retry).
fn try_grant(
    record: Option<&Record>,
    name: &LockName,
    owner: &OwnerId,
    ttl: Ttl,
    now: Now,
) -> (AcquireOutcome, Option<Record>) {
    let token = match record {
        Some(r) if r.live_owner(now.ms).is_some_and(|o| o != owner.as_str()) => {
            return (AcquireOutcome::Held(holder(r, now)), None);
        }
        Some(r) if r.live_owner(now.ms).is_some() => {
            FencingToken::new(r.token).expect("checked when parsed")
        }
        Some(r) => now.next_token(Some(r.token)),
        None => now.next_token(None),
    };
    let write = Record::held(owner, token.get(), now.expiry(ttl));
    let lease = Lease {
        name: name.clone(),
        owner: owner.clone(),
        token,
        ttl,
    };
    (AcquireOutcome::Acquired(lease), Some(write))
}

fn holder(record: &Record, now: Now) -> Holder {
    Holder {
        owner: record.owner_id().expect("a live record has an owner"),
        token: FencingToken::new(record.token).expect("checked when parsed"),
        // Both ends rounded up, as the expiry is: never more than the ttl just granted.
        expires_in: Some(Duration::from_millis(
            record.expires_ms.saturating_sub(now.micros.div_ceil(1000)),
        )),
    }
}

#[async_trait]
impl Lock for FileLock {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: true,
            cross_process: true,
            owner_on_any_handle: true,
            fair_line: true,
        }
    }

    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error> {
        let (path, lease_name, owner) = (self.path_of(name), name.clone(), owner.clone());
        self.transact(name, Access::Create, move |stored, now| {
            let record = intact(stored, &lease_name, &path)?;
            Ok(try_grant(record.as_ref(), &lease_name, &owner, ttl, now))
        })
        .await
    }

    /// The line is kept in `<name>.line` beside the lock file, under the lock file's `flock`.
    async fn try_acquire_in_line(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        let (path, lease_name, owner) = (self.path_of(name), name.clone(), owner.clone());
        let patience = lock_core::patience_millis(patience);
        self.transact(name, Access::Create, move |stored, now| {
            let record = intact(stored, &lease_name, &path)?;
            let line_path = line::path_of(&path);
            let fail = |e| line_error(&lease_name, &line_path, e);
            let mut line = Line::read(&line_path).map_err(fail)?;
            // A place kept for over half the patience already is not rewritten: a waiter
            // that asks often (every 200 ms) mostly only reads the line.
            let first = line.keep(
                owner.as_str(),
                now.ms,
                now.ms.saturating_add(patience / 2),
                now.ms.saturating_add(patience),
            );
            let open = record
                .as_ref()
                .is_none_or(|r| r.live_owner(now.ms).is_none());
            if open && !first {
                line.write(&line_path).map_err(fail)?;
                let until = line.first_kept_until().expect("someone is first");
                let first_kept_for = Duration::from_millis(until.saturating_sub(now.ms));
                return Ok((InLineOutcome::Behind { first_kept_for }, None));
            }
            let (outcome, write) = try_grant(record.as_ref(), &lease_name, &owner, ttl, now);
            if matches!(outcome, AcquireOutcome::Acquired(_)) {
                line.leave(owner.as_str());
            }
            line.write(&line_path).map_err(fail)?;
            Ok((outcome.into(), write))
        })
        .await
    }

    /// A place that went rewrites the lock file as it was, so that the waiters behind it,
    /// who watch that file, look again at once.
    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        let (path, lease_name, owner) = (self.path_of(name), name.clone(), owner.clone());
        self.transact(name, Access::Write, move |stored, _| {
            let line_path = line::path_of(&path);
            let fail = |e| line_error(&lease_name, &line_path, e);
            let mut line = Line::read(&line_path).map_err(fail)?;
            if !line.leave(owner.as_str()) {
                return Ok(((), None));
            }
            line.write(&line_path).map_err(fail)?;
            Ok(((), stored.ok().flatten()))
        })
        .await
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        let (path, lease_name, owner) = (self.path_of(name), name.clone(), owner.clone());
        self.transact(name, Access::Write, move |stored, now| {
            Ok(match intact(stored, &lease_name, &path)? {
                Some(r) if r.live_owner(now.ms) == Some(owner.as_str()) => {
                    let write = Record::held(&owner, r.token, now.expiry(ttl));
                    let lease = Lease {
                        name: lease_name,
                        owner,
                        token: FencingToken::new(r.token).expect("checked when parsed"),
                        ttl,
                    };
                    (RenewOutcome::Renewed(lease), Some(write))
                }
                _ => (RenewOutcome::Lost, None),
            })
        })
        .await
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        let (path, lease_name, owner) = (self.path_of(name), name.clone(), owner.clone());
        self.transact(name, Access::Write, move |stored, now| {
            let record = intact(stored, &lease_name, &path)?;
            Ok(
                match record
                    .as_ref()
                    .and_then(|r| r.live_owner(now.ms).map(|o| (r, o)))
                {
                    Some((r, o)) if o == owner.as_str() => {
                        (ReleaseOutcome::Released, Some(Record::open(r.token)))
                    }
                    Some(_) => (ReleaseOutcome::NotOwner, None),
                    None => (ReleaseOutcome::NotLocked, None),
                },
            )
        })
        .await
    }

    /// Also repairs a lock file with foreign or garbled content: it is rewritten as an open
    /// lock whose tokens continue from the system clock, and the answer is
    /// [`ReleaseOutcome::Released`].
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        self.transact(name, Access::Write, move |stored, now| {
            Ok(match stored {
                Ok(Some(r)) if r.live_owner(now.ms).is_some() => {
                    (ReleaseOutcome::Released, Some(Record::open(r.token)))
                }
                Ok(_) => (ReleaseOutcome::NotLocked, None),
                Err(_) => {
                    let floor = now.next_token(None).get() - 1;
                    (ReleaseOutcome::Released, Some(Record::open(floor)))
                }
            })
        })
        .await
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        let (path, lease_name) = (self.path_of(name), name.clone());
        self.transact(name, Access::Read, move |stored, now| {
            let record = intact(stored, &lease_name, &path)?;
            Ok(match record.filter(|r| r.live_owner(now.ms).is_some()) {
                Some(r) => (LockState::Locked(holder(&r, now)), None),
                None => (LockState::Open, None),
            })
        })
        .await
    }

    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        Ok(self.inner.watcher.subscribe(&self.path_of(name)))
    }

    /// An opening wakes only the turn of the owner first in the line file (see the crate's
    /// docs on waking).
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        Ok(self
            .inner
            .watcher
            .subscribe_turn(&self.path_of(name), owner.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_ends_no_earlier_than_now_plus_ttl() {
        let ttl = Ttl::from_millis(250).unwrap();
        // (now in µs, the end in ms): exact milliseconds stay, any fraction rounds up.
        for (micros, end) in [(1_000, 251), (1_001, 252), (1_999, 252), (0, 250)] {
            let now = Now {
                ms: micros / 1000,
                micros,
            };
            assert_eq!(now.expiry(ttl), end, "now = {micros} µs");
            assert!(now.expiry(ttl) * 1000 >= micros + 250_000);
        }
    }
}

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod dir;
mod io;
mod lease;
mod line;
mod lock;
mod path;
mod record;
mod tie;
mod transaction;
mod url;
mod watcher;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lock_core::{Error, LockName, Operation};

pub use dir::default_dir;
pub use url::dir_from_url;

/// Locks as files in one directory: one lease file per name, read and written under an
/// exclusive `flock` for the few microseconds each operation takes.
///
/// See the crate documentation for the file layout and the guarantees.
#[derive(Clone)]
pub struct FileLock {
    inner: Arc<Inner>,
}

/// Short: the directory is all there is to say.
impl std::fmt::Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLock")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    watcher: watcher::Watcher,
    /// One turn at a time per lock file within this handle: see [`FileLock::turn`].
    turns: Box<[tokio::sync::Mutex<()>]>,
}

/// How many turnstiles a handle keeps; names share one when their paths hash alike.
const TURNS: usize = 256;

/// The backend's name in errors.
pub(crate) const BACKEND: &str = "files";

/// [`Error::Backend`] for `op` failing with `e` at the file system, saying `message`.
pub(crate) fn failed(op: Operation, message: String, e: std::io::Error) -> Error {
    Error::backend(BACKEND, op, message, Some(e.into()))
}

impl FileLock {
    /// Locks in `dir`, which is created with mode `0700` when missing.
    ///
    /// # Errors
    /// [`Error::Backend`] when the directory cannot be created or is not a directory.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        dir::ensure(&dir, Operation::Connect)?;
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

    /// Locks in the directory a `file:///abs/dir` URL names ([`dir_from_url`]), created
    /// `0700` when missing, as [`FileLock::new`] does.
    ///
    /// # Errors
    /// [`lock_core::InvalidInput::Config`] for a URL that names no local absolute directory;
    /// then as [`FileLock::new`].
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Self::new(dir_from_url(url)?)
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

    /// The turnstile of the lock file at `path`. Operations of one handle on one file take
    /// turns here (first come, first served) rather than at the `flock`: there, the loser of
    /// a race within the process would go to the blocking pool and poll, and a crowd of
    /// waiters woken at once by a release would poll each other out, the next in line
    /// included. Only other processes' operations are met at the `flock`.
    fn turn(&self, path: &Path) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(path);
        &self.inner.turns[(hash % TURNS as u64) as usize]
    }

    fn watcher(&self) -> &watcher::Watcher {
        &self.inner.watcher
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_is_short_and_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let lock = super::FileLock::new(dir.path()).unwrap();
        let debug = format!("{lock:?}");
        assert!(debug.len() < 120 + dir.path().as_os_str().len(), "{debug}");
        assert!(debug.contains(&*dir.path().to_string_lossy()), "{debug}");
    }
}

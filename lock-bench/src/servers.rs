//! The servers a run needs, started like the test kit starts them: a private `redis-server`
//! and Postgres cluster on free loopback ports (never the machine's own), and a temporary
//! directory for lock files. Everything goes away when the run ends.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use lock_testkit::{PostgresServer, RedisServer};
use serde::Serialize;
use tempfile::TempDir;

/// A backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Lock files under `flock`.
    File,
    /// A private `redis-server`.
    Redis,
    /// A private Postgres cluster, lease mode.
    Postgres,
}

impl Backend {
    /// Its name in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Redis => "redis",
            Self::Postgres => "postgres",
        }
    }
}

/// One backend's server (or directory) for the length of a run.
pub enum Server {
    /// A directory of lock files.
    File(TempDir),
    /// A `redis-server` of our own.
    Redis(RedisServer),
    /// A Postgres cluster of our own.
    Postgres(PostgresServer),
}

impl Server {
    /// Starts what `backend` needs. Synchronous: call it from the main thread, before the
    /// runtime runs anything.
    pub fn start(backend: Backend) -> Self {
        match backend {
            Backend::File => Self::File(
                tempfile::Builder::new()
                    .prefix("lock-bench-files-")
                    .tempdir()
                    .expect("a temporary directory for lock files"),
            ),
            Backend::Redis => Self::Redis(RedisServer::start()),
            Backend::Postgres => Self::Postgres(PostgresServer::start()),
        }
    }

    /// The server's own URL: the Redis or Postgres URL, or the directory for files.
    pub fn base(&self) -> String {
        match self {
            Self::File(dir) => dir.path().display().to_string(),
            Self::Redis(server) => server.url(),
            Self::Postgres(server) => server.url(),
        }
    }
}

/// The `lock::connect` URL for `backend` on `base` (a server URL, or a directory under which
/// `sub` is the lock directory for files).
pub fn lock_url(backend: Backend, base: &str, sub: &str) -> String {
    match backend {
        Backend::File => format!("file://{}", file_dir(base, sub).display()),
        Backend::Redis => format!("{base}/?prefix=bench-{sub}:"),
        Backend::Postgres => format!("{base}?table=bench_{sub}"),
    }
}

/// The lock directory `sub` under the files base directory.
pub fn file_dir(base: &str, sub: &str) -> PathBuf {
    Path::new(base).join(sub)
}

//! The backends under test, each with servers of its own from the test kit, and the server
//! faults: kill and restart, `pg_terminate_backend`.

use std::fmt;
use std::time::Duration;

use lock_testkit::{PostgresServer, RedisServer};
use serde::Serialize;

/// A backend, as the runner tests it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Lock files in a temporary directory.
    File,
    /// A `redis-server` without persistence.
    Redis,
    /// Postgres, lease mode.
    PostgresLease,
    /// Postgres, session advisory locks (`mode=session`).
    PostgresSession,
}

impl Backend {
    /// Every backend, in report order.
    pub const ALL: [Backend; 4] = [
        Backend::File,
        Backend::Redis,
        Backend::PostgresLease,
        Backend::PostgresSession,
    ];

    /// Whether leases expire by a ttl (session locks end with their connection instead).
    pub fn expires(self) -> bool {
        self != Backend::PostgresSession
    }

    /// Whether a killed holder frees the lock at once (the workers' guards tie their leases
    /// to their processes: files), rather than at the end of its lease.
    pub fn frees_on_death(self) -> bool {
        self == Backend::File
    }

    /// Whether there is a server to kill and restart.
    pub fn has_server(self) -> bool {
        self != Backend::File
    }

    /// Whether `pg_terminate_backend` applies.
    pub fn is_postgres(self) -> bool {
        matches!(self, Backend::PostgresLease | Backend::PostgresSession)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::File => "file",
            Backend::Redis => "redis",
            Backend::PostgresLease => "postgres (lease)",
            Backend::PostgresSession => "postgres (session)",
        })
    }
}

/// A backend with its server (or directory), for one run.
pub struct Env {
    /// Which backend.
    pub backend: Backend,
    /// The URL the workers connect to.
    pub url: String,
    server: Server,
}

enum Server {
    /// Kept only to be removed when the run ends.
    File(#[allow(dead_code)] tempfile::TempDir),
    Redis(RedisServer),
    Postgres(PostgresServer),
}

impl Env {
    /// Starts the backend's server (or makes its directory).
    pub fn start(backend: Backend) -> Self {
        // Operations give up after a second while a server is down, so workers see the
        // outage as errors and try again instead of hanging.
        let (url, server) = match backend {
            Backend::File => {
                let dir = tempfile::tempdir().expect("a lock directory");
                (
                    format!("file://{}", dir.path().display()),
                    Server::File(dir),
                )
            }
            Backend::Redis => {
                let redis = RedisServer::start();
                (
                    format!("{}?connect_timeout=1s&response_timeout=1s", redis.url()),
                    Server::Redis(redis),
                )
            }
            Backend::PostgresLease | Backend::PostgresSession => {
                let pg = PostgresServer::start();
                let mode = if backend == Backend::PostgresSession {
                    "&mode=session"
                } else {
                    ""
                };
                (
                    format!("{}?connect_timeout=1{mode}", pg.url()),
                    Server::Postgres(pg),
                )
            }
        };
        Self {
            backend,
            url,
            server,
        }
    }

    /// Kills the server with `SIGKILL`.
    pub fn kill_server(&mut self) {
        match &mut self.server {
            Server::File(_) => panic!("the file backend has no server"),
            Server::Redis(r) => r.kill(),
            Server::Postgres(p) => p.kill(),
        }
    }

    /// Starts the killed server again on the same port (Redis comes back empty, Postgres
    /// recovers from its WAL).
    pub fn restart_server(&mut self) {
        match &mut self.server {
            Server::File(_) => panic!("the file backend has no server"),
            Server::Redis(r) => r.restart(),
            Server::Postgres(p) => p.restart(),
        }
    }

    /// How long a killed server stays down. A Redis without persistence forgets its leases,
    /// so it must stay down for a ttl (a "delayed restart", as Redis's own distributed-lock
    /// page asks): otherwise a new holder could be let in while the old one still relies on
    /// its lease. Postgres keeps its leases and comes back at once.
    pub fn down_for(&self, ttl: Duration) -> Duration {
        match self.server {
            Server::Redis(_) => ttl + Duration::from_millis(50),
            _ => Duration::ZERO,
        }
    }

    /// Ends every client session but psql's own with `pg_terminate_backend`, and returns once
    /// each of those backends has exited (locks released), or after 10 s.
    ///
    /// One signal each, then one wait for them all: `pg_terminate_backend(pid, timeout)`
    /// would wait for each in turn, seconds per round with a few dozen connections.
    pub fn terminate_connections(&self) {
        match &self.server {
            Server::Postgres(p) => {
                p.psql(
                    "DO $$ DECLARE victims int[]; since timestamptz := clock_timestamp(); BEGIN \
                       SELECT array_agg(pid) INTO victims FROM pg_stat_activity \
                        WHERE datname = current_database() AND pid <> pg_backend_pid() \
                          AND backend_type = 'client backend'; \
                       PERFORM pg_terminate_backend(v) FROM unnest(victims) AS v; \
                       LOOP \
                         PERFORM pg_stat_clear_snapshot(); \
                         EXIT WHEN NOT EXISTS \
                           (SELECT 1 FROM pg_stat_activity WHERE pid = ANY (victims)) \
                           OR clock_timestamp() > since + interval '10 s'; \
                         PERFORM pg_sleep(0.001); \
                       END LOOP; \
                     END $$",
                );
            }
            _ => panic!("only Postgres has backends to terminate"),
        }
    }
}

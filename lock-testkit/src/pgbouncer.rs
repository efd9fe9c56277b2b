//! PgBouncer in transaction pooling mode.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::binaries::{find_binary, give_to, run_as, server_user};
use crate::ports;
use crate::postgres::PostgresServer;
use crate::process::ServerProcess;
use crate::startup::{self, Attempt, LogMark, Startup};

/// How long `pgbouncer` may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What `pgbouncer` logs once it listens; proves the server on the port is ours.
const READY_SIGN: &str = "process up";

/// A `pgbouncer` of our own in front of a [`PostgresServer`], pooling by transaction
/// (`pool_mode = transaction`), as many production setups do.
///
/// Clients are trusted (no password is asked); PgBouncer logs in to Postgres with the
/// credentials of the server's [`url`](PostgresServer::url). Every database name is passed
/// through to the same name on the server. Like the servers, it runs as a direct child that
/// dies with the test process, in a temporary directory that [`Drop`] removes; as root it
/// runs as the `postgres` system user, since PgBouncer refuses root.
pub struct PgBouncer {
    // Dropped (killed, which loses nothing) before `dir` is removed.
    process: ServerProcess,
    port: u16,
    url_credentials: String,
    dir: TempDir,
}

impl PgBouncer {
    /// Starts PgBouncer on a free 127.0.0.1 port in front of `postgres`, and waits until it
    /// listens.
    ///
    /// # Panics
    ///
    /// If `pgbouncer` is not installed or does not start within 10 s (the message quotes its
    /// log).
    pub fn start(postgres: &PostgresServer) -> Self {
        let system_user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("lock-testkit-pgbouncer-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a temporary directory: {err}"));
        give_to(dir.path(), system_user.as_ref());
        let (user, password) = postgres.credentials();
        write(&dir.path().join("userlist.txt"), &userlist(user, password));
        let binary = find_binary("pgbouncer", &["/usr/sbin".into()]);
        let (port, process) = startup::start_on_free_port("pgbouncer", |port| {
            let config = dir.path().join("pgbouncer.ini");
            write(&config, &config_file(dir.path(), port, postgres.port()));
            let mut command = Command::new(&binary);
            command.arg(&config).current_dir(dir.path());
            run_as(&mut command, system_user.as_ref());
            launch(command, &log_path(dir.path()), port)
        });
        Self {
            process,
            port,
            url_credentials: postgres.url_credentials(),
            dir,
        }
    }

    /// `postgres://USER[:PASSWORD]@127.0.0.1:PORT/postgres`, with the same credentials as
    /// the server's [`url`](PostgresServer::url).
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/postgres",
            self.url_credentials, self.port
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PgBouncer's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The temporary directory holding `pgbouncer.ini`, `userlist.txt` and `pgbouncer.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("pgbouncer.log")
}

fn launch(command: Command, log: &Path, port: u16) -> Attempt {
    let startup = Startup {
        what: format!("pgbouncer on port {port}"),
        log: LogMark::at_end_of(log),
        timeout: READY_TIMEOUT,
        busy_signs: &["Address already in use"],
    };
    let process = ServerProcess::spawn(command, log);
    startup.wait(process, |log| {
        log.text().contains(READY_SIGN) && ports::connect(port, Duration::from_millis(200)).is_ok()
    })
}

fn config_file(dir: &Path, port: u16, postgres_port: u16) -> String {
    format!(
        "\
[databases]
* = host=127.0.0.1 port={postgres_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
auth_type = trust
auth_file = {userlist}
max_client_conn = 500
default_pool_size = 50
; Retry a server that was down after 1 s rather than 15 s, for restart tests.
server_login_retry = 1
; Sent by some drivers (sqlx, JDBC) at connect; PgBouncer cannot track it.
ignore_startup_parameters = extra_float_digits
",
        userlist = dir.join("userlist.txt").display(),
    )
}

/// The users PgBouncer accepts; a password here is also what it logs in to Postgres with.
fn userlist(user: &str, password: Option<&str>) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    format!("{} {}\n", quote(user), quote(password.unwrap_or("")))
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

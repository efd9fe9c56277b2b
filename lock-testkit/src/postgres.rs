//! A throw-away Postgres cluster.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::libc;
use nix::sys::signal::Signal;
use nix::unistd::User;
use tempfile::TempDir;

use crate::binaries::{give_to, postgres_binaries, run_as, server_user};
use crate::ports;
use crate::process::{ServerProcess, child_pids, run_with_timeout, send_signal};
use crate::psql;
use crate::startup::{self, Attempt, LogMark, Startup};

/// How long `postgres` may take to accept connections, crash recovery included.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for a small, quick test cluster. `fsync` stays on: crash tests rely on commits
/// surviving a SIGKILL of the postmaster.
const SETTINGS: [&str; 5] = [
    "listen_addresses=127.0.0.1",
    "max_connections=200",
    "shared_buffers=32MB",
    "huge_pages=off",
    // In the data directory rather than /dev/shm, so nothing outlives the temporary directory.
    "dynamic_shared_memory_type=mmap",
];

/// A role that logs in with a password.
struct Login {
    user: String,
    password: String,
}

/// A Postgres cluster of our own: `initdb` into a temporary directory, then `postgres` on a
/// free 127.0.0.1 port, with its Unix socket in that directory too.
///
/// The `postgres` binary runs as a direct child of the test process (no `pg_ctl`), so the
/// kernel kills it if the test process dies (`PR_SET_PDEATHSIG`). When the test runs as
/// root, the cluster runs as the `postgres` system user, since Postgres refuses root.
/// Dropping it shuts the cluster down and removes the directory.
///
/// The superuser `postgres` logs in without a password ("trust"), unless the cluster was
/// made with [`start_with_password`](Self::start_with_password).
pub struct PostgresServer {
    process: Option<ServerProcess>,
    port: u16,
    login: Option<Login>,
    system_user: Option<User>,
    dir: TempDir,
}

impl PostgresServer {
    /// Creates a cluster, starts it, and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// If the Postgres binaries are missing, `initdb` fails, or the server does not accept
    /// connections within 30 s (the message quotes its log).
    pub fn start() -> Self {
        Self::create(None)
    }

    /// Like [`start`](Self::start), but connections over TCP need a password
    /// (`scram-sha-256`): [`url`](Self::url) then logs in as `user` with `password`.
    ///
    /// `user` is an ordinary role (not a superuser) that may create tables in schema
    /// `public` and schemas in database `postgres`; if it is `postgres`, the superuser gets
    /// the password. Everyone needs a password over TCP; [`psql`](Self::psql) still works
    /// as the superuser over the Unix socket.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_password(user: &str, password: &str) -> Self {
        let server = Self::create(Some(Login {
            user: user.to_owned(),
            password: password.to_owned(),
        }));
        server.psql(&create_login_sql(user, password));
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`, or with `user:password@` for a cluster
    /// made with [`start_with_password`](Self::start_with_password).
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/postgres",
            self.url_credentials(),
            self.port
        )
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The temporary directory: the data directory `data`, the Unix socket and
    /// `postgres.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Crashes the cluster: SIGKILL to the postmaster and all its backends. Committed data
    /// survives; [`restart`](Self::restart) runs crash recovery.
    pub fn kill(&mut self) {
        if let Some(postmaster) = self.process.take() {
            kill_cluster(postmaster);
        }
    }

    /// Stops the postmaster and every backend with SIGSTOP: new connections hang, and so do
    /// queries on open connections, until [`resume`](Self::resume).
    pub fn pause(&self) {
        if let Some(postmaster) = &self.process {
            // The postmaster first, so it starts no backend we would miss.
            stop(postmaster);
            for backend in child_pids(postmaster.pid()) {
                send_signal(backend, Signal::SIGSTOP);
            }
        }
    }

    /// Lets a paused cluster go on (SIGCONT to the backends and the postmaster).
    pub fn resume(&self) {
        if let Some(postmaster) = &self.process {
            for backend in child_pids(postmaster.pid()) {
                send_signal(backend, Signal::SIGCONT);
            }
            postmaster.signal(Signal::SIGCONT);
        }
    }

    /// Kills the cluster if it runs, then starts it again on the same port and data
    /// directory, and waits until it accepts connections (after crash recovery).
    ///
    /// # Panics
    ///
    /// If the port stays taken for 10 s, or the server does not get ready.
    pub fn restart(&mut self) {
        self.kill();
        let process = startup::start_on_port("postgres", self.port, |port| self.launch(port));
        self.process = Some(process);
    }

    /// Runs `sql` with `psql` as the superuser over the Unix socket and returns what it
    /// printed: bare values, one row per line, columns separated by `|`, without the last
    /// newline (`select 1` gives `"1"`).
    ///
    /// # Panics
    ///
    /// If psql fails (the message quotes its stderr) or takes more than 30 s.
    pub fn psql(&self, sql: &str) -> String {
        psql::as_superuser(self.dir.path(), self.port, sql)
            .unwrap_or_else(|err| panic!("psql `{sql}`: {err}"))
    }

    /// `user` or `user:password`, percent-encoded, for the URLs of this cluster and of a
    /// PgBouncer in front of it.
    pub(crate) fn url_credentials(&self) -> String {
        match &self.login {
            None => "postgres".to_owned(),
            Some(login) => format!(
                "{}:{}",
                percent_encode(&login.user),
                percent_encode(&login.password)
            ),
        }
    }

    /// The role [`url`](Self::url) logs in as, and its password if it has one.
    pub(crate) fn credentials(&self) -> (&str, Option<&str>) {
        match &self.login {
            None => ("postgres", None),
            Some(login) => (&login.user, Some(&login.password)),
        }
    }

    fn create(login: Option<Login>) -> Self {
        let system_user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("lock-testkit-postgres-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a temporary directory: {err}"));
        give_to(dir.path(), system_user.as_ref());
        let mut server = Self {
            process: None,
            port: 0,
            login,
            system_user,
            dir,
        };
        server.init_cluster();
        let (port, process) = startup::start_on_free_port("postgres", |port| server.launch(port));
        server.port = port;
        server.process = Some(process);
        server
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init_cluster(&self) {
        let mut command = Command::new(&postgres_binaries().initdb);
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            // Only initdb's own writes skip fsync; the running server keeps it on.
            .arg("--no-sync")
            .current_dir(self.dir.path());
        run_as(&mut command, self.system_user.as_ref());
        let output = run_with_timeout(command, Duration::from_secs(60))
            .unwrap_or_else(|err| panic!("initdb: {err}"));
        if !output.status.success() {
            panic!(
                "initdb failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        if self.login.is_some() {
            let hba = self.data_dir().join("pg_hba.conf");
            // Overwriting keeps the file's owner and mode.
            fs::write(&hba, PASSWORD_HBA)
                .unwrap_or_else(|err| panic!("cannot write {}: {err}", hba.display()));
        }
    }

    fn launch(&self, port: u16) -> Attempt {
        let log = self.dir.path().join("postgres.log");
        let data_dir = self.data_dir();
        let mut command = Command::new(&postgres_binaries().postgres);
        command
            .arg("-D")
            .arg(&data_dir)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .current_dir(self.dir.path());
        for setting in SETTINGS {
            command.arg("-c").arg(setting);
        }
        run_as(&mut command, self.system_user.as_ref());
        let startup = Startup {
            what: format!("postgres on port {port}"),
            log: LogMark::at_end_of(&log),
            timeout: READY_TIMEOUT,
            // The second: the backends of a killed cluster still hold its shared memory.
            busy_signs: &["Address already in use", "pre-existing shared memory block"],
        };
        let process = ServerProcess::spawn(command, &log);
        let pid = process.pid();
        startup.wait(process, |_| {
            postmaster_is_ready(&data_dir, pid)
                && ports::connect(port, Duration::from_millis(200)).is_ok()
        })
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.resume();
        if let Some(mut postmaster) = self.process.take() {
            // Immediate shutdown: quick, and the postmaster still removes its shared memory.
            postmaster.signal(Signal::SIGQUIT);
            if !postmaster.wait_for_exit(Duration::from_secs(5)) {
                kill_cluster(postmaster);
            }
        }
        remove_leftover_shared_memory(&self.data_dir());
    }
}

/// `pg_hba.conf` for [`PostgresServer::start_with_password`]: trust on the Unix socket,
/// passwords over TCP.
const PASSWORD_HBA: &str = "\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

/// SIGKILL to the postmaster and its backends, then reaps the postmaster.
fn kill_cluster(postmaster: ServerProcess) {
    // Stopped, it can neither start new backends nor reap the ones we kill, so their pids
    // stay theirs while we signal them. (Only once it *is* stopped: a signal is delivered
    // after `kill` returns, and a backend forked in between would escape, holding the shared
    // memory that the restart then finds in use.)
    stop(&postmaster);
    // Until each has died (a zombie, which the stopped postmaster cannot reap): one still
    // dying holds the cluster's shared memory, and a restart would find it in use.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let living: Vec<u32> = child_pids(postmaster.pid())
            .into_iter()
            .filter(|&pid| !has_died(pid))
            .collect();
        if living.is_empty() || std::time::Instant::now() >= deadline {
            break;
        }
        for pid in living {
            send_signal(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    postmaster.kill();
}

/// SIGSTOP to `process`, returning once it is stopped (at most a second).
fn stop(process: &ServerProcess) {
    process.signal(Signal::SIGSTOP);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while state_of(process.pid()).is_some_and(|state| state != "T" && state != "t")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// The state letter of process `pid` in `/proc/<pid>/stat`, `None` when it is gone.
fn state_of(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_command = &stat[stat.rfind(')')? + 1..];
    after_command.split_whitespace().next().map(str::to_owned)
}

/// Whether process `pid` has ended: gone, or a zombie waiting for its parent.
fn has_died(pid: u32) -> bool {
    state_of(pid).is_none_or(|state| state == "Z" || state == "X")
}

/// Line `index` of `postmaster.pid`, which the postmaster keeps up to date.
fn postmaster_pid_line(data_dir: &Path, index: usize) -> Option<String> {
    let contents = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    contents
        .lines()
        .nth(index)
        .map(|line| line.trim().to_owned())
}

/// True once the postmaster `pid` says "ready" in `postmaster.pid` (as `pg_ctl -w` checks):
/// crash recovery is over and it accepts connections.
fn postmaster_is_ready(data_dir: &Path, pid: u32) -> bool {
    postmaster_pid_line(data_dir, 0) == Some(pid.to_string())
        && postmaster_pid_line(data_dir, 7).as_deref() == Some("ready")
}

/// A postmaster killed with SIGKILL leaves its System V shared memory segment behind (the
/// next postmaster on that data directory would remove it). Its id is the second number on
/// line 7 of `postmaster.pid`, a file that only a postmaster that did not exit cleanly leaves.
fn remove_leftover_shared_memory(data_dir: &Path) {
    let Some(shmid) = postmaster_pid_line(data_dir, 6)
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<libc::c_int>().ok())
    else {
        return;
    };
    // SAFETY: IPC_RMID reads no buffer, so a null pointer is allowed; a wrong id only makes
    // the call fail, which is fine here.
    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
}

/// SQL that gives `user` the password and lets it work in database `postgres`.
fn create_login_sql(user: &str, password: &str) -> String {
    let role = format!("\"{}\"", user.replace('"', "\"\""));
    let password = format!("'{}'", password.replace('\'', "''"));
    if user == "postgres" {
        return format!("ALTER ROLE postgres PASSWORD {password}");
    }
    format!(
        "CREATE ROLE {role} LOGIN PASSWORD {password}; \
         GRANT ALL ON DATABASE postgres TO {role}; \
         GRANT ALL ON SCHEMA public TO {role};"
    )
}

/// Percent-encodes everything but the unreserved URL characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

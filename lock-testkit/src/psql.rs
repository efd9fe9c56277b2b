//! Running SQL with the `psql` binary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::binaries::postgres_binaries;
use crate::process::run_with_timeout;

/// How long [`PostgresServer::psql`](crate::PostgresServer::psql) waits for an answer.
const PSQL_TIMEOUT: Duration = Duration::from_secs(30);

/// psql without `~/.psqlrc`, printing bare values (`-A -t`), no command tags (`-q`), never
/// prompting for a password (`-w`), stopping at the first error.
const PSQL_FLAGS: [&str; 7] = ["-X", "-A", "-t", "-q", "-w", "-v", "ON_ERROR_STOP=1"];

/// Runs `sql` as the superuser `postgres` over the Unix socket in `socket_dir`.
pub(crate) fn as_superuser(socket_dir: &Path, port: u16, sql: &str) -> Result<String, String> {
    let mut command = Command::new(&postgres_binaries().psql);
    command
        .args(PSQL_FLAGS)
        .arg("-h")
        .arg(socket_dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-c", sql]);
    run(command, PSQL_TIMEOUT)
}

/// Runs `sql` with `psql` against `url` (any libpq connection string), giving up after
/// `timeout`. Returns what psql printed (as [`PostgresServer::psql`](crate::PostgresServer::psql) does) or, when psql
/// fails or runs out of time, a message with its stderr.
///
/// For checks that are meant to fail: a wrong password, a paused server.
pub fn try_psql(url: &str, sql: &str, timeout: Duration) -> Result<String, String> {
    let mut command = Command::new(&postgres_binaries().psql);
    command.args(PSQL_FLAGS).args(["-d", url, "-c", sql]);
    run(command, timeout)
}

fn run(command: Command, timeout: Duration) -> Result<String, String> {
    let output = run_with_timeout(command, timeout)?;
    if !output.status.success() {
        return Err(format!(
            "psql exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
}

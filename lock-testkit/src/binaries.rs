//! Finding the server binaries, and the user that runs them.

use std::cmp::Reverse;
use std::env;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nix::unistd::{User, chown, geteuid};

/// What to tell someone whose machine lacks a server binary.
const INSTALL_HINT: &str = "install it: apt-get install -y redis-server postgresql pgbouncer";

/// Where Debian's postgresql packages put their binaries, newest version first.
fn versioned_postgres_dirs() -> Vec<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| Reverse(*version));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Finds `name` on `PATH`, then in `fallback_dirs`.
///
/// # Panics
///
/// If it is in none of them, with a hint on how to install it.
pub(crate) fn find_binary(name: &str, fallback_dirs: &[PathBuf]) -> PathBuf {
    let path_dirs = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .chain(fallback_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!("`{name}` is not on PATH nor in {fallback_dirs:?}; {INSTALL_HINT}")
        })
}

/// The Postgres binaries, all from one installation so that their versions match.
pub(crate) struct PostgresBinaries {
    pub(crate) postgres: PathBuf,
    pub(crate) initdb: PathBuf,
    pub(crate) psql: PathBuf,
}

/// Finds `postgres` (on `PATH`, then the newest `/usr/lib/postgresql/*/bin`) and takes the
/// other tools from the directory it really lives in.
pub(crate) fn postgres_binaries() -> &'static PostgresBinaries {
    static BINARIES: OnceLock<PostgresBinaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let fallback_dirs = versioned_postgres_dirs();
        let postgres = find_binary("postgres", &fallback_dirs);
        let home = fs::canonicalize(&postgres)
            .ok()
            .and_then(|real| real.parent().map(Path::to_path_buf));
        let tool = |name: &str| match &home {
            Some(dir) if is_executable(&dir.join(name)) => dir.join(name),
            _ => find_binary(name, &fallback_dirs),
        };
        PostgresBinaries {
            initdb: tool("initdb"),
            psql: tool("psql"),
            postgres,
        }
    })
}

/// The user that Postgres and PgBouncer must run as: `None` (the current user) unless we
/// are root, which both refuse to run as; then the `postgres` system user.
///
/// # Panics
///
/// When root and there is no `postgres` user.
pub(crate) fn server_user() -> Option<User> {
    if !geteuid().is_root() {
        return None;
    }
    let user = User::from_name("postgres")
        .unwrap_or_else(|err| panic!("cannot look up the `postgres` user: {err}"))
        .unwrap_or_else(|| {
            panic!("running as root needs a `postgres` user to run the servers as; {INSTALL_HINT}")
        });
    Some(user)
}

/// Makes `command` run as `user` (like `runuser -u`), or as ourselves when `None`.
pub(crate) fn run_as(command: &mut Command, user: Option<&User>) {
    if let Some(user) = user {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

/// Gives `path` to `user`, so a server running as that user can write there.
pub(crate) fn give_to(path: &Path, user: Option<&User>) {
    if let Some(user) = user {
        chown(path, Some(user.uid), Some(user.gid)).unwrap_or_else(|err| {
            panic!("cannot chown {} to {}: {err}", path.display(), user.name)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "apt-get install -y redis-server postgresql pgbouncer")]
    fn a_missing_binary_says_how_to_install_it() {
        find_binary("lock-testkit-no-such-binary", &[]);
    }

    #[test]
    fn the_postgres_tools_come_from_one_directory() {
        let binaries = postgres_binaries();
        let home = |path: &Path| fs::canonicalize(path).unwrap().parent().unwrap().to_owned();
        assert_eq!(home(&binaries.initdb), home(&binaries.postgres));
        assert_eq!(home(&binaries.psql), home(&binaries.postgres));
    }
}

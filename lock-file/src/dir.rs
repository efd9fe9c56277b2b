//! The lock directory: created `0700` when missing; the per-user default refuses a directory
//! another user owns or others can read.

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lock_core::{Error, Operation};

use crate::failed;

/// Creates `dir` and its missing parents with mode `0700`; fine if it exists as a directory.
pub(crate) fn ensure(dir: &Path, op: Operation) -> Result<(), Error> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                // Something else stands there: say what, rather than "File exists".
                failed(op, format!("{} is not a directory", dir.display()), e)
            } else {
                failed(
                    op,
                    format!("cannot create lock directory {}", dir.display()),
                    e,
                )
            }
        })?;
    let meta = std::fs::metadata(dir).map_err(|e| {
        failed(
            op,
            format!("cannot read lock directory {}", dir.display()),
            e,
        )
    })?;
    if !meta.is_dir() {
        let message = format!("{} is not a directory", dir.display());
        return Err(Error::backend(crate::BACKEND, op, message, None));
    }
    Ok(())
}

/// Checks that `dir` belongs to the current user and that nobody else may use it.
pub(crate) fn ensure_private(dir: &Path) -> Result<(), Error> {
    let op = Operation::Connect;
    ensure(dir, op)?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        failed(
            op,
            format!("cannot read lock directory {}", dir.display()),
            e,
        )
    })?;
    let me = nix::unistd::geteuid().as_raw();
    let refuse = |why: String| {
        let message = format!("refusing private lock directory {}: {why}", dir.display());
        Error::backend(crate::BACKEND, op, message, None)
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("it is a symbolic link".into()));
    }
    if meta.uid() != me {
        return Err(refuse(format!(
            "it is owned by uid {}, not by you (uid {me})",
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!("its mode is {mode:o}; it must be 700")));
    }
    Ok(())
}

/// The per-user default: `$XDG_RUNTIME_DIR/lock` when that is set, otherwise
/// `$TMPDIR/lock-<uid>` (`/tmp/lock-<uid>`).
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(runtime) if !runtime.is_empty() => PathBuf::from(runtime).join("lock"),
        _ => std::env::temp_dir().join(format!("lock-{}", nix::unistd::geteuid().as_raw())),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn a_missing_directory_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_directory_others_can_read_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = ensure_private(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("mode is 755"), "{err}");
    }

    #[test]
    fn a_file_is_not_a_lock_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "").unwrap();
        assert!(ensure(&file, Operation::Connect).is_err());
    }
}

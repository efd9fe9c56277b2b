//! Ties: a lease bound to the life of the processes that hold it, as a kernel lock.
//!
//! A tied lease (its record says `"tied":true`) is held through an open-file-description lock
//! (`F_OFD_SETLK`) on one byte of its lock file: the byte at the lease's fencing token, a read
//! lock, taken through a read-only descriptor of its own. The kernel drops that lock when the
//! last descriptor of that open file description is closed, so when the holder and every
//! process that inherited the descriptor are gone. An operation that reads a tied, unexpired
//! record asks the kernel (`F_OFD_GETLK`) whether anyone still holds that byte; no one means
//! the lease has ended.
//!
//! - One byte per token: a holder that was stopped past its lease still holds its old byte,
//!   which does not stand in the way of the next holder's.
//! - The transaction `flock` and these locks do not meet: on Linux, `flock` locks and
//!   record locks are separate (on NFS they are not; lock directories there are unsupported).
//! - The descriptor is read-only, so its last close is an `IN_CLOSE_NOWRITE` event on the lock
//!   file, which waiters' watchers hear; every other operation opens the file for writing, or,
//!   for an inspect, reads it without holding a tie.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

/// The byte that stands for `token`'s lease (a lock range must fit an `off_t`).
fn byte_of(token: u64) -> libc::off_t {
    (token % (libc::off_t::MAX as u64)) as libc::off_t
}

fn range(kind: libc::c_int, token: u64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all zeroes is a valid value of it.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte_of(token);
    lock.l_len = 1;
    lock
}

/// Opens the lock file at `path` anew and takes the tie of `token`'s lease on it: the
/// descriptor whose open file description holds the lease.
pub(crate) fn take(path: &Path, token: u64) -> std::io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    fcntl(&file, FcntlArg::F_OFD_SETLK(&range(libc::F_RDLCK, token)))?;
    Ok(file.into())
}

/// Whether some process still holds a tie of `token`'s lease, asked through `file` (any
/// descriptor of the lock file).
pub(crate) fn held(file: &File, token: u64) -> std::io::Result<bool> {
    let mut probe = range(libc::F_WRLCK, token);
    fcntl(file.as_fd(), FcntlArg::F_OFD_GETLK(&mut probe))?;
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tie_is_held_until_its_last_descriptor_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        std::fs::write(&path, b"").unwrap();
        let probe = File::open(&path).unwrap(); // read-only, as an inspect opens it
        assert!(!held(&probe, 7).unwrap());
        let tie = take(&path, 7).unwrap();
        assert!(held(&probe, 7).unwrap());
        assert!(!held(&probe, 8).unwrap(), "another token's byte is free");
        let copy = tie.try_clone().unwrap();
        drop(tie);
        assert!(held(&probe, 7).unwrap(), "a copy keeps it");
        drop(copy);
        assert!(!held(&probe, 7).unwrap());
    }

    #[test]
    fn two_ties_of_one_lease_hold_it_together() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        std::fs::write(&path, b"").unwrap();
        let probe = File::open(&path).unwrap();
        let (a, b) = (take(&path, 9).unwrap(), take(&path, 9).unwrap());
        drop(a);
        assert!(held(&probe, 9).unwrap());
        drop(b);
        assert!(!held(&probe, 9).unwrap());
    }

    #[test]
    fn huge_tokens_still_name_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        std::fs::write(&path, b"").unwrap();
        let probe = File::open(&path).unwrap();
        let _tie = take(&path, u64::MAX).unwrap();
        assert!(held(&probe, u64::MAX).unwrap());
    }
}

//! [`HolderTie`]: what ties a lease to the life of the processes that hold it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Ties a lease to the life of the processes that hold it (see [`Lock::tie`](crate::Lock::tie)).
///
/// The lease stands, for its ttl as ever, while this tie or any copy of it is open: a copy
/// made with [`HolderTie::try_clone`], or the descriptor inherited by a child process (clear
/// its close-on-exec flag to hand it down). Once every copy is closed, because the holder and
/// every process it handed the tie to have ended (exited, crashed, killed with `SIGKILL`), the
/// lease has ended too: the next acquisition takes the name at once, with a higher fencing
/// token, instead of waiting out the ttl, as a lock taken with `flock(1)` frees at once.
///
/// A tie never keeps a lease past its expiry: a holder that stops renewing (a stopped process,
/// a paused machine) still loses the lease at its ttl.
///
/// Under the hood a tie is a kernel lock held through an open file description (on the file
/// backend, an open-file-description lock on the lock file), so it is a Unix descriptor.
#[derive(Debug)]
pub struct HolderTie {
    fd: OwnedFd,
}

impl HolderTie {
    /// A tie held through `fd` (for backend authors): the lease it ties ends once every
    /// descriptor of `fd`'s open file description is closed.
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// Another descriptor of the same tie: the lease stands while either is open.
    ///
    /// # Errors
    /// The operating system's, when no descriptor can be had (too many open files).
    pub fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            fd: self.fd.try_clone()?,
        })
    }
}

impl AsFd for HolderTie {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<HolderTie> for OwnedFd {
    fn from(tie: HolderTie) -> Self {
        tie.fd
    }
}

//! The Linux watcher: one inotify instance per handle and the thread that reads it.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lock_core::raw::ChangeHub;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

use super::{Wake, key, whom_to_wake};

/// What the watcher listens for on a lock file: a change of its attributes (`IN_ATTRIB`), which
/// an operation that frees room on the name makes after its write (`signal_opening`), and which
/// the file losing a link (`unlink`, `rename` over it) makes too; the file going away or being
/// moved; and the last close of a read-only descriptor (`IN_CLOSE_NOWRITE`), which is how a
/// tied lease ends when its holders die (`tie.rs`: a tie is such a descriptor; operations open
/// the file for writing, and only an inspect's read also makes this event). Not writes, opens
/// or other closes: a grant, a renewal and every try would otherwise wake every waiting
/// process's watcher, CPU taken from the next holder at each handoff. The lock file itself is
/// watched, not its directory, so the line files beside it and other names' lock files wake no
/// one.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_NOWRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
}

/// The inotify instance, the lock files it watches, and the thread that reads it.
pub(super) struct Watching {
    inotify: Arc<Inotify>,
    files: Arc<Mutex<Files>>,
    /// Set by the thread when it failed and ended: the next watch starts another.
    failed: Arc<AtomicBool>,
    /// Dropped with the handle: the thread sees the pipe close and ends.
    _stop: OwnedFd,
}

/// Watched lock files, both ways round. A file replaced under its path (a new inode) is
/// watched anew; the old watch stays in `by_wd` until the kernel drops it (`IN_IGNORED`).
#[derive(Default)]
struct Files {
    by_path: HashMap<PathBuf, WatchDescriptor>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    /// `by_path`'s length after the last clean-up.
    pruned_at_len: usize,
}

impl Files {
    /// Amortised clean-up, whenever the watches doubled: stops watching the files nobody
    /// waits on any more, so that a process that waits on many names over its life does not
    /// use up the user's inotify watches.
    fn prune(&mut self, inotify: &Inotify, hub: &ChangeHub) {
        if self.by_path.len() <= 2 * self.pruned_at_len.max(32) {
            return;
        }
        let by_wd = &mut self.by_wd;
        self.by_path.retain(|path, wd| {
            let keep = hub.is_watched(&key(path));
            if !keep {
                by_wd.remove(wd);
                // Its `IN_IGNORED` then names a watch no longer known, and is dropped.
                let _ = inotify.rm_watch(*wd);
            }
            keep
        });
        self.pruned_at_len = self.by_path.len();
    }
}

impl Watching {
    /// Opens an inotify instance and starts the thread that reads it into `hub`.
    pub(super) fn start(hub: Arc<ChangeHub>) -> Result<Self, nix::Error> {
        let inotify = Arc::new(Inotify::init(
            InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK,
        )?);
        let (stop_rx, stop) = nix::unistd::pipe()?;
        let files = Arc::new(Mutex::new(Files::default()));
        let failed = Arc::new(AtomicBool::new(false));
        let (reader, reader_files, reader_failed) =
            (inotify.clone(), files.clone(), failed.clone());
        std::thread::Builder::new()
            .name("lock-file-watch".into())
            .spawn(move || {
                if let Err(e) = read_events(&reader, &stop_rx, &reader_files, &hub) {
                    tracing::warn!(error = %e, "the file watcher failed; the next wait starts another");
                    // Before the wake-up, so that the waiters woken watch a new one.
                    reader_failed.store(true, Ordering::SeqCst);
                    hub.notify_all();
                }
            })
            .map_err(|e| nix::Error::try_from(e).unwrap_or(nix::Error::EAGAIN))?;
        Ok(Self {
            inotify,
            files,
            failed,
            _stop: stop,
        })
    }

    /// Whether the thread failed and ended.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Makes sure lock file `file` is watched, as it is now (a file replaced since it was
    /// last watched is watched anew); `false` when it cannot be (no such file yet, or the
    /// user's inotify watches are used up). Call it after subscribing to `file` in `hub`, so
    /// that a clean-up meanwhile does not take the watch away.
    pub(super) fn watch(&self, file: &Path, hub: &ChangeHub) -> bool {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.prune(&self.inotify, hub);
        // Also when watched already: the same inode gives the same descriptor back, a file
        // made anew a new one.
        match self.inotify.add_watch(file, mask()) {
            Ok(wd) => {
                if let Some(old) = files.by_path.insert(file.to_owned(), wd)
                    && old != wd
                {
                    tracing::debug!(file = %file.display(), "lock file replaced; watching the new one");
                }
                files.by_wd.insert(wd, file.to_owned());
                true
            }
            Err(nix::Error::ENOENT) => false, // not made yet: the waiter's try makes it
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot watch; waiters poll");
                false
            }
        }
    }
}

/// The watcher thread: waits for events and wakes the waiters, until the handle goes away
/// (`Ok`) or inotify fails.
fn read_events(
    inotify: &Inotify,
    stop: &OwnedFd,
    files: &Mutex<Files>,
    hub: &ChangeHub,
) -> Result<(), nix::Error> {
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
        if fds[1].any().unwrap_or(true) {
            return Ok(()); // the handle is gone
        }
        match inotify.read_events() {
            Ok(events) => {
                for event in events {
                    on_event(&event, files, hub);
                }
            }
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Wakes whoever `event` concerns.
fn on_event(event: &InotifyEvent, files: &Mutex<Files>, hub: &ChangeHub) {
    if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        // Events were lost: everyone looks again.
        hub.notify_all();
        return;
    }
    let path = {
        let mut files = files.lock().unwrap_or_else(|e| e.into_inner());
        if event.mask.contains(AddWatchFlags::IN_IGNORED) {
            // The watch ended (the file is gone, or the watch was removed by a clean-up):
            // forget it, so that the file is watched anew when waited on.
            let Some(path) = files.by_wd.remove(&event.wd) else {
                return;
            };
            if files.by_path.get(&path) == Some(&event.wd) {
                files.by_path.remove(&path);
            }
            path
        } else {
            match files.by_wd.get(&event.wd) {
                Some(path) => path.clone(),
                None => return,
            }
        }
    };
    if event
        .mask
        .intersects(AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_CLOSE_NOWRITE)
    {
        // Room freed, a tie closed (or a lost link, which the file's going away follows): the
        // turns of the waiters the room can serve, unless someone took it again.
        match whom_to_wake(&path) {
            Wake::Nobody => {}
            Wake::Turns(owners) => hub.notify_turns(&key(&path), owners.iter().map(String::as_str)),
            Wake::Everyone => {
                hub.notify_turn(&key(&path), None);
            }
        }
    } else {
        // Gone or moved: whatever the name holds now, everyone looks.
        hub.notify(&key(&path));
    }
}

//! The Linux watcher: one inotify instance per handle and the thread that reads it.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lock_core::ChangeHub;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

use super::{first_in_line, held_now, is_lock_file, key};

/// What the watcher listens for: writes, and a lock file going away or being replaced. Not
/// opens, closes or reads: every try opens the lock file and its line file, and waking every
/// waiting process's watcher on each of those was most of a contended handoff's cost.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
}

/// The inotify instance, the directories it watches, and the thread that reads it.
pub(super) struct Watching {
    inotify: Arc<Inotify>,
    dirs: Arc<Mutex<Dirs>>,
    /// Set by the thread when it failed and ended: the next watch starts another.
    failed: Arc<AtomicBool>,
    /// Dropped with the handle: the thread sees the pipe close and ends.
    _stop: OwnedFd,
}

/// Watched directories, both ways round.
#[derive(Default)]
struct Dirs {
    by_path: HashMap<PathBuf, WatchDescriptor>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
}

impl Watching {
    /// Opens an inotify instance and starts the thread that reads it into `hub`.
    pub(super) fn start(hub: Arc<ChangeHub>) -> Result<Self, nix::Error> {
        let inotify = Arc::new(Inotify::init(
            InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK,
        )?);
        let (stop_rx, stop) = nix::unistd::pipe()?;
        let dirs = Arc::new(Mutex::new(Dirs::default()));
        let failed = Arc::new(AtomicBool::new(false));
        let (reader, reader_dirs, reader_failed) = (inotify.clone(), dirs.clone(), failed.clone());
        std::thread::Builder::new()
            .name("lock-file-watch".into())
            .spawn(move || {
                if let Err(e) = read_events(&reader, &stop_rx, &reader_dirs, &hub) {
                    tracing::warn!(error = %e, "the file watcher failed; the next wait starts another");
                    // Before the wake-up, so that the waiters woken watch a new one.
                    reader_failed.store(true, Ordering::SeqCst);
                    hub.notify_all();
                }
            })
            .map_err(|e| nix::Error::try_from(e).unwrap_or(nix::Error::EAGAIN))?;
        Ok(Self {
            inotify,
            dirs,
            failed,
            _stop: stop,
        })
    }

    /// Whether the thread failed and ended.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Makes sure `dir` is watched; `false` when it cannot be.
    pub(super) fn watch(&self, dir: &Path) -> bool {
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        if !dirs.by_path.contains_key(dir) {
            match self.inotify.add_watch(dir, mask()) {
                Ok(wd) => {
                    dirs.by_path.insert(dir.to_owned(), wd);
                    dirs.by_wd.insert(wd, dir.to_owned());
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; waiters poll");
                    return false;
                }
            }
        }
        true
    }
}

/// The watcher thread: waits for events and wakes the waiters, until the handle goes away
/// (`Ok`) or inotify fails.
fn read_events(
    inotify: &Inotify,
    stop: &OwnedFd,
    dirs: &Mutex<Dirs>,
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
                    on_event(&event, dirs, hub);
                }
            }
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Wakes whoever `event` concerns.
fn on_event(event: &InotifyEvent, dirs: &Mutex<Dirs>, hub: &ChangeHub) {
    if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        // Events were lost: everyone looks again.
        hub.notify_all();
        return;
    }
    if event.mask.contains(AddWatchFlags::IN_IGNORED) {
        // The directory went away (or its file system): forget it, so that it is watched
        // again when waited on, and let everyone look again.
        let mut dirs = dirs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = dirs.by_wd.remove(&event.wd) {
            dirs.by_path.remove(&dir);
        }
        hub.notify_all();
        return;
    }
    let Some(name) = event.name.as_deref() else {
        return;
    };
    let path = {
        let dirs = dirs.lock().unwrap_or_else(|e| e.into_inner());
        match dirs.by_wd.get(&event.wd) {
            Some(dir) => dir.join(name),
            None => return,
        }
    };
    if !is_lock_file(&path) {
        return;
    }
    if event.mask.contains(AddWatchFlags::IN_MODIFY) {
        if !held_now(&path) {
            hub.notify_turn(&key(&path), first_in_line(&path).as_deref());
        }
    } else {
        // Deleted, or moved away or in: whatever the name holds now, everyone looks.
        hub.notify(&key(&path));
    }
}

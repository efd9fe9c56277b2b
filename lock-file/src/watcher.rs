//! Change notification for waiters: on Linux one inotify instance per handle, read by its own
//! thread (`inotify.rs`), on the lock files someone waits on (the files, not their directory:
//! writes to line files and to other names' lock files wake no one), fanned out per file by a
//! [`ChangeHub`]. Only operations that leave a lock file without a live lease (a release, a
//! force release, a waiter leaving the line of an open name) wake anyone, by touching the
//! file's times once its `flock` is let go (`signal_opening`), and of the waiters
//! standing in the name's line, only the first's turn (read from the line file, without its
//! `flock`: a line read mid-write wakes them all, and a turn missed costs a waiter no more
//! than its next look, within 200 ms). Elsewhere there is no watcher, and waiters poll.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod inotify;

use std::path::Path;
use std::sync::{Arc, Mutex};

use lock_core::raw::{ChangeFuture, ChangeHub};

#[cfg(any(target_os = "linux", target_os = "android"))]
use self::inotify::Watching;
use crate::line::{self, Line};
use crate::record::{RECORD_LEN, Record};

/// No change notification where there is no inotify: waiters poll.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
enum Watching {}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Watching {
    fn start(_: Arc<ChangeHub>) -> Result<Self, &'static str> {
        Err("this platform has no inotify")
    }

    fn watch(&self, _: &Path, _: &ChangeHub) -> bool {
        match *self {}
    }

    fn failed(&self) -> bool {
        match *self {}
    }
}

#[derive(Default)]
pub(crate) struct Watcher {
    hub: Arc<ChangeHub>,
    state: Mutex<Option<Watching>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// A future that completes when lock file `file` may have opened after this call (a
    /// release, a force release, a tie's end, the file replaced); `None` when it cannot be
    /// watched (no inotify, or no such file yet): waiters then poll.
    pub(crate) fn subscribe(&self, file: &Path) -> Option<ChangeFuture> {
        let change = self.hub.subscribe(&key(file));
        self.watch(file).then_some(change)
    }

    /// As [`subscribe`](Self::subscribe), for `owner` standing in `file`'s line: an opening
    /// wakes it only when its place stands first.
    pub(crate) fn subscribe_turn(&self, file: &Path, owner: &str) -> Option<ChangeFuture> {
        let change = self.hub.subscribe_turn(&key(file), owner);
        self.watch(file).then_some(change)
    }

    /// Makes sure `file` is watched; `false` when it cannot be. Called with the caller's
    /// subscription already made, so that the watcher's clean-up keeps the watch.
    fn watch(&self, file: &Path) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.as_ref().is_none_or(Watching::failed) {
            match Watching::start(self.hub.clone()) {
                Ok(watching) => *state = Some(watching),
                Err(e) => {
                    tracing::warn!(error = %e, "no file change notification; waiters poll");
                    return false;
                }
            }
        }
        state.as_ref().expect("set above").watch(file, &self.hub)
    }
}

/// Whether the lock file at `path` holds a live lease right now: an opening signalled after
/// someone took the name again (or a link lost from a held file, or a reader's close) wakes no
/// waiter; they are woken by the release that follows, or sleep until the lease's end. Read
/// without the `flock`, so a write under way may show half a record: anything not read as a
/// live lease (a tied one whose ties are all closed included) wakes the waiters, who then look
/// for themselves.
///
/// Opened for writing, though it only reads: the close of a read-only descriptor is the event
/// that brought the watcher here (a tie closed), and must not bring it back.
fn held_now(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    // A live record is `RECORD_LEN` bytes; anything longer is not one.
    let Ok(Ok(Some(record))) =
        crate::io::read_up_to(&file, RECORD_LEN + 1).map(|b| Record::parse(&b))
    else {
        return false;
    };
    record.live_owner(now_ms()).is_some()
        && (!record.tied || crate::tie::held(&file, record.token).unwrap_or(false))
}

/// The owner standing first in the line of the lock file at `path`, read without the `flock`;
/// `None` when there is no line or it cannot be read (then every turn wakes).
fn first_in_line(path: &Path) -> Option<String> {
    let line = Line::read(&line::path_of(path)).ok()?;
    line.first_live(now_ms()).map(str::to_owned)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use lock_core::OwnerId;

    use super::*;

    #[test]
    fn only_a_live_lease_keeps_waiters_asleep() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        let owner = OwnerId::random();
        let cases: [(&[u8], bool); 5] = [
            (&Record::held(&owner, 7, u64::MAX).to_bytes(), true),
            (&Record::held(&owner, 7, 1).to_bytes(), false), // expired
            (&Record::open(7).to_bytes(), false),
            (b"{\"v\":1,\"own", false), // half a write
            (b"", false),
        ];
        for (bytes, held) in cases {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(
                held_now(&path),
                held,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert!(!held_now(&dir.path().join("missing.lock")));
        // A tied lease is held while a tie of it is open, and not a moment longer.
        std::fs::write(
            &path,
            Record::held(&owner, 7, u64::MAX).with_tie(true).to_bytes(),
        )
        .unwrap();
        assert!(!held_now(&path), "no tie open");
        let tie = crate::tie::take(&path, 7).unwrap();
        assert!(held_now(&path));
        drop(tie);
        assert!(!held_now(&path));
    }

    #[test]
    fn the_turn_is_the_first_place_still_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        let far = u64::MAX / 2;
        let cases: [(Option<String>, Option<&str>); 5] = [
            (None, None), // no line file
            (Some(String::new()), None),
            (Some(format!("{far} aaaa\n{far} bbbb\n")), Some("aaaa")),
            (Some(format!("1 aaaa\n{far} bbbb\n")), Some("bbbb")), // the first lapsed
            (Some("\u{fffd}garbled".into()), None),
        ];
        for (text, first) in cases {
            if let Some(text) = &text {
                std::fs::write(line::path_of(&path), text).unwrap();
            }
            assert_eq!(first_in_line(&path).as_deref(), first, "{text:?}");
        }
    }
}

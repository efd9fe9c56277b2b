//! Change notification for waiters: on Linux one inotify instance per handle, read by its own
//! thread (`inotify.rs`), on the lock files someone waits on (the files, not their directory:
//! writes to line files and to other names' lock files wake no one), fanned out per file by a
//! [`ChangeHub`]. Only operations that free room on a name (a release, a force release, a
//! waiter leaving the line) wake anyone, by touching the file's times once its `flock` is let
//! go (`signal_opening`), and of the waiters standing in the name's line, only the turns of
//! those the room can serve (`raw::servable` over the live leases and the line, both read
//! without the `flock`: a line read mid-write wakes every turn, and a turn missed costs a
//! waiter no more than its next look, within 200 ms). Elsewhere there is no watcher, and
//! waiters poll.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod inotify;

use std::path::Path;
use std::sync::{Arc, Mutex};

use lock_core::Kind;
use lock_core::raw::{self, ChangeFuture, ChangeHub};

#[cfg(any(target_os = "linux", target_os = "android"))]
use self::inotify::Watching;
use crate::line::{self, Line};
use crate::record::{FIRST_READ, MAX_FILE_LEN, Record};

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

    /// As [`subscribe`](Self::subscribe), for `owner` standing in `file`'s line: room freed
    /// wakes it only when the room can serve its place (see [`whom_to_wake`]).
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

/// Whom a signal on the lock file at `path` wakes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// No one: the name has no room (taken again since, or still full).
    Nobody,
    /// The plain waiters and the turns of these owners, the front of the line that the room
    /// can serve (`raw::servable`); none when the room serves no one in line (then only plain
    /// waiters, who may claim less).
    Turns(Vec<String>),
    /// Every waiter: the name has room and no readable line says whose turn it is.
    Everyone,
}

/// Whom to wake, as the lock file at `path` and its line stand right now. Read without the
/// `flock`, so a write under way may show half a record or line: a record not read is taken
/// as open, and a line not read wakes every turn; the waiters then look for themselves (and a
/// turn missed costs a waiter no more than its next look, within 200 ms).
pub(crate) fn whom_to_wake(path: &Path) -> Wake {
    let now = now_ms();
    let held = held_now(path, now);
    let mut used = 0u64;
    let mut capacity = None;
    for kind in &held {
        used += u64::from(kind.weight());
        capacity = Some(u64::from(kind.capacity()));
    }
    let room = capacity.is_none_or(|c| used < c);
    let Ok(line) = Line::read(&line::path_of(path)) else {
        return if room { Wake::Everyone } else { Wake::Nobody };
    };
    let places: Vec<(&str, Kind)> = line.live(now).collect();
    if places.is_empty() {
        return if room { Wake::Everyone } else { Wake::Nobody };
    }
    let served = raw::servable(held, places.iter().map(|(_, kind)| *kind));
    if served == 0 && !room {
        return Wake::Nobody;
    }
    Wake::Turns(
        places[..served]
            .iter()
            .map(|(owner, _)| (*owner).to_owned())
            .collect(),
    )
}

/// The kinds of the live leases in the lock file at `path` (none when it cannot be read): an
/// opening signalled after someone took the room again (or a link lost from a held file, or a
/// reader's close) wakes no waiter the room cannot serve. A tied lease whose ties are all
/// closed is not live.
///
/// Opened for writing, though it only reads: the close of a read-only descriptor is the event
/// that brought the watcher here (a tie closed), and must not bring it back.
fn held_now(path: &Path, now_ms: u64) -> Vec<Kind> {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    else {
        return Vec::new();
    };
    let Ok(Ok(bytes)) = crate::io::read_whole(&file, FIRST_READ, MAX_FILE_LEN) else {
        return Vec::new();
    };
    let Ok(Some(record)) = Record::parse(&bytes) else {
        return Vec::new();
    };
    record
        .live(now_ms)
        .filter(|l| !l.tied || crate::tie::held(&file, l.token).unwrap_or(false))
        .map(|l| l.kind)
        .collect()
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
    use lock_core::{OwnerId, Permits};

    use super::*;
    use crate::record::Entry;

    fn sem(n: u32) -> Kind {
        Kind::permit(Permits::new(n).unwrap())
    }

    fn record(leases: &[(&str, u64, Kind)]) -> Vec<u8> {
        Record {
            last: 100,
            leases: leases
                .iter()
                .enumerate()
                .map(|(i, (owner, expires_ms, kind))| Entry {
                    owner: (*owner).to_owned(),
                    token: 90 + i as u64,
                    expires_ms: *expires_ms,
                    tied: false,
                    kind: *kind,
                })
                .collect(),
        }
        .to_bytes(0)
    }

    #[test]
    fn only_live_leases_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        let owner = OwnerId::random();
        let (x, s, far) = (Kind::Exclusive, Kind::Shared, u64::MAX);
        let cases: [(Vec<u8>, Vec<Kind>); 7] = [
            (Record::held(&owner, 7, far).to_bytes(0), vec![x]),
            (Record::held(&owner, 7, 1).to_bytes(0), vec![]), // expired
            (Record::open(7).to_bytes(0), vec![]),
            (b"{\"v\":1,\"own".to_vec(), vec![]), // half a write
            (Vec::new(), vec![]),
            (
                record(&[("a", far, s), ("b", 1, s), ("c", far, s)]),
                vec![s, s],
            ),
            (
                record(&[("a", far, sem(3)), ("b", far, sem(3))]),
                vec![sem(3); 2],
            ),
        ];
        for (bytes, held) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert_eq!(held_now(&path, now_ms()), held, "{text:?}");
        }
        assert!(held_now(&dir.path().join("missing.lock"), now_ms()).is_empty());
        // A tied lease is held while a tie of it is open, and not a moment longer.
        std::fs::write(
            &path,
            Record::held(&owner, 7, u64::MAX).with_tie(true).to_bytes(0),
        )
        .unwrap();
        assert!(held_now(&path, now_ms()).is_empty(), "no tie open");
        let tie = crate::tie::take(&path, 7).unwrap();
        assert_eq!(held_now(&path, now_ms()), vec![x]);
        drop(tie);
        assert!(held_now(&path, now_ms()).is_empty());
    }

    #[test]
    fn the_room_wakes_the_places_it_can_serve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.lock");
        let (x, s, far) = (Kind::Exclusive, Kind::Shared, u64::MAX / 2);
        let turns = |owners: &[&str]| Wake::Turns(owners.iter().map(|o| (*o).to_owned()).collect());
        let place = |owner: &str, kind: Kind| match kind {
            Kind::Shared => format!("{far} {owner} shared\n"),
            Kind::Permit(n) => format!("{far} {owner} permits={n}\n"),
            _ => format!("{far} {owner}\n"),
        };
        // (the leases, the line file, whom to wake)
        let cases: Vec<(Vec<u8>, Option<String>, Wake)> = vec![
            (record(&[]), None, Wake::Everyone), // open, no line file
            (record(&[]), Some(String::new()), Wake::Everyone),
            (record(&[("h", far, x)]), None, Wake::Nobody), // taken again
            (
                record(&[]),
                Some(place("aaaa", x) + &place("bbbb", x)),
                turns(&["aaaa"]),
            ),
            (
                record(&[]),
                Some(format!("1 aaaa\n{}", place("bbbb", x))), // the first lapsed
                turns(&["bbbb"]),
            ),
            (record(&[]), Some("\u{fffd}garbled".into()), Wake::Everyone),
            (
                record(&[]),
                Some(place("r1", s) + &place("r2", s) + &place("w", x)),
                turns(&["r1", "r2"]),
            ),
            (
                record(&[("a", far, sem(3)), ("b", far, sem(3))]),
                Some(place("d", sem(3)) + &place("e", sem(3))),
                turns(&["d"]),
            ),
            (
                record(&[("a", far, sem(3)), ("b", far, sem(3)), ("c", far, sem(3))]),
                Some(place("d", sem(3))),
                Wake::Nobody, // full
            ),
            (
                record(&[("r", far, s)]),
                Some(place("w", x) + &place("r2", s)),
                turns(&[]), // a reader left, the writer still waits: plain waiters only
            ),
            (
                record(&[("r", far, s)]),
                Some(place("r2", s)),
                turns(&["r2"]),
            ),
            (
                b"garbage".to_vec(),
                Some(place("aaaa", x)),
                turns(&["aaaa"]),
            ),
        ];
        for (bytes, line, want) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let line_path = line::path_of(&path);
            let _ = std::fs::remove_file(&line_path);
            if let Some(line) = &line {
                std::fs::write(&line_path, line).unwrap();
            }
            let text = String::from_utf8_lossy(&bytes);
            assert_eq!(whom_to_wake(&path), want, "{text:?} {line:?}");
        }
    }
}

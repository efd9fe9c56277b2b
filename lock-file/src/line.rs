//! The waiters' line of one lock name: `<escaped name>.line` beside its `.lock` file, read
//! and rewritten only under the lock file's `flock`, so that a decision on the lease and on
//! the line is one atomic step.
//!
//! One place per text line, first come first: `<kept until, ms since the Unix epoch> <owner>`,
//! then, for a claim other than an exclusive one, its kind: `shared`, or `permits=N` for a
//! permit of a semaphore of N. A place without a kind is exclusive, so the places of exclusive
//! claims read as they always did.
//! A place is worth nothing after a crash (its waiter asks again), so the file is written
//! without `fsync`, and lines that cannot be read (a torn write) are dropped as places that
//! lapsed.
//!
//! The file is only written when the line changed, in place, padded with empty lines to at
//! least its old length, and never removed: an empty line is one `\n`. Cutting a file costs
//! ext4 a journal update, and a file cut to nothing and written again is flushed to disk on
//! close (the `auto_da_alloc` safeguard for replace-by-truncate): that made every write of the
//! line a disk round trip, milliseconds on a virtual disk, all of it under the lock file's
//! `flock`. A file grown past 4 KiB by a crowd of waiters is cut back once, when it empties.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use lock_core::{Kind, Permits};

/// A line file longer than this is cut back when its line empties.
const SHRINK_ABOVE: u64 = 4096;

/// The line file that goes with the lock file at `lock_path`.
pub(crate) fn path_of(lock_path: &Path) -> PathBuf {
    lock_path.with_extension("line")
}

/// One waiter's place: kept until a time in ms, its owner, the kind it claims.
type Place = (u64, String, Kind);

/// A line as read: places in order, each kept until a time in ms.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Line {
    places: Vec<Place>,
    /// The places as read, to tell whether the line changed.
    read: Vec<Place>,
    /// The file's length as read.
    len: u64,
}

fn parse(text: &str) -> Vec<Place> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            let until = words.next()?.parse().ok()?;
            let owner = lock_core::OwnerId::new(words.next()?).ok()?;
            let kind = match words.next() {
                None => Kind::Exclusive,
                Some("shared") => Kind::Shared,
                Some(word) => Kind::permit(word.strip_prefix("permits=")?.parse::<Permits>().ok()?),
            };
            if words.next().is_some() {
                return None;
            }
            Some((until, owner.as_str().to_owned(), kind))
        })
        .collect()
}

/// A place as a text line.
fn format_place((until, owner, kind): &Place) -> String {
    match kind.normalized() {
        Kind::Shared => format!("{until} {owner} shared\n"),
        Kind::Permit(n) => format!("{until} {owner} permits={n}\n"),
        _ => format!("{until} {owner}\n"),
    }
}

/// Why a line file cannot be used.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Something other than a regular file stands there (a planted link, a directory).
    Foreign(String),
    /// Reading or writing failed.
    Io(&'static str, std::io::Error),
}

impl Line {
    /// The line in `path`, empty when there is no file.
    pub(crate) fn read(path: &Path) -> Result<Self, LineError> {
        let file = match open(path, false) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(opened(e)),
        };
        let meta = file.metadata().map_err(|e| LineError::Io("inspect", e))?;
        if !meta.is_file() {
            return Err(LineError::Foreign("not a regular file".into()));
        }
        let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        let bytes = crate::io::read_up_to(&file, len).map_err(|e| LineError::Io("read", e))?;
        // Bytes that are not UTF-8 are a torn or foreign write: no readable places.
        let places = std::str::from_utf8(&bytes).map(parse).unwrap_or_default();
        Ok(Self {
            read: places.clone(),
            places,
            len: meta.len(),
        })
    }

    /// Drops the places not kept past `now_ms` and keeps `owner`'s, claiming `kind`, until
    /// `until_ms` (at the back when it had none, or when its place lapsed), unless it is kept
    /// past `enough_ms` already. Says how much of the name's capacity the places ahead of
    /// `owner`'s need: the sum of their kinds' weights.
    pub(crate) fn keep(
        &mut self,
        owner: &str,
        kind: Kind,
        now_ms: u64,
        enough_ms: u64,
        until_ms: u64,
    ) -> u64 {
        self.places
            .retain(|(until, o, _)| *until > now_ms || o == owner);
        match self.places.iter_mut().find(|(_, o, _)| o == owner) {
            Some(place) if place.0 > now_ms => {
                if place.0 <= enough_ms {
                    place.0 = until_ms;
                }
                place.2 = kind;
            }
            _ => {
                self.places.retain(|(_, o, _)| o != owner);
                self.places.push((until_ms, owner.to_owned(), kind));
            }
        }
        self.places
            .iter()
            .take_while(|(_, o, _)| o != owner)
            .map(|(_, _, k)| u64::from(k.weight()))
            .sum()
    }

    /// The places kept past `now_ms`, first first: each owner and the kind it claims.
    pub(crate) fn live(&self, now_ms: u64) -> impl Iterator<Item = (&str, Kind)> {
        self.places
            .iter()
            .filter(move |(until, _, _)| *until > now_ms)
            .map(|(_, owner, kind)| (owner.as_str(), *kind))
    }

    /// Until when the first place is kept (ms), if there is one.
    pub(crate) fn first_kept_until(&self) -> Option<u64> {
        self.places.first().map(|(until, _, _)| *until)
    }

    /// Removes `owner`'s place; says whether it had one.
    pub(crate) fn leave(&mut self, owner: &str) -> bool {
        let before = self.places.len();
        self.places.retain(|(_, o, _)| o != owner);
        self.places.len() < before
    }

    /// Writes the line to `path` if it changed since it was read: in place, never shorter
    /// than one byte (see the module's documentation).
    pub(crate) fn write(&self, path: &Path) -> Result<(), LineError> {
        if self.places == self.read {
            return Ok(());
        }
        let mut text: String = self.places.iter().map(format_place).collect();
        // Never shorter than what stands there: cutting a file makes ext4 journal the change
        // (and a cut to nothing flushes it on close), milliseconds under the flock. Empty
        // lines are no places. A file grown past a page by a crowd is cut once it empties.
        let len = (text.len() as u64).max(self.len).max(1);
        let cut = self.places.is_empty() && self.len > SHRINK_ABOVE;
        let len = if cut { 1 } else { len };
        text.extend(std::iter::repeat_n(
            '\n',
            (len as usize).saturating_sub(text.len()),
        ));
        let mut file = open(path, true).map_err(opened)?;
        file.write_all(text.as_bytes())
            .map_err(|e| LineError::Io("write", e))?;
        if cut {
            file.set_len(len)
                .map_err(|e| LineError::Io("truncate", e))?;
        }
        Ok(())
    }
}

fn opened(e: std::io::Error) -> LineError {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        LineError::Foreign("a symbolic link stands there; it is never followed".into())
    } else {
        LineError::Io("open", e)
    }
}

fn open(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(write)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn sem(n: u32) -> Kind {
        Kind::permit(Permits::new(n).unwrap())
    }

    fn places(want: &[(u64, &str, Kind)]) -> Vec<Place> {
        want.iter()
            .map(|(t, o, k)| (*t, (*o).to_owned(), *k))
            .collect()
    }

    #[test]
    fn unreadable_lines_are_dropped_as_lapsed_places() {
        let x = Kind::Exclusive;
        type Case<'a> = (&'a str, &'a [(u64, &'a str, Kind)]);
        let cases: [Case; 16] = [
            ("", &[]),
            ("\n", &[]),
            ("10 a\n", &[(10, "a", x)]),
            ("10 a\n20 b\n", &[(10, "a", x), (20, "b", x)]),
            ("10 a\ngarbage\n20 b", &[(10, "a", x), (20, "b", x)]),
            ("x a\n", &[]),
            ("10\n", &[]),
            ("10 two words\n", &[]),
            ("-1 a\n", &[]),
            ("10 a shared\n", &[(10, "a", Kind::Shared)]),
            ("10 a permits=3\n20 b\n", &[(10, "a", sem(3)), (20, "b", x)]),
            ("10 a permits=1\n", &[(10, "a", x)]),
            ("10 a permits=0\n", &[]),
            ("10 a permits=10001\n", &[]),
            ("10 a 3\n", &[]),
            ("10 a shared extra\n", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), places(want), "{text:?}");
        }
        for place in places(&[(10, "a", x), (11, "b", Kind::Shared), (12, "c", sem(7))]) {
            assert_eq!(parse(&format_place(&place)), vec![place]);
        }
    }

    #[test]
    fn first_come_first_served_and_lapsed_places_go() {
        let mut line = Line::default();
        let (x, s) = (Kind::Exclusive, Kind::Shared);
        let w = u64::from(x.weight());
        // (owner, kind, now, enough, until) -> the weight ahead, and the places after.
        type Step<'a> = (
            &'a str,
            Kind,
            u64,
            u64,
            u64,
            u64,
            &'a [(u64, &'a str, Kind)],
        );
        let steps: [Step; 10] = [
            (A, x, 0, 50, 100, 0, &[(100, A, x)]),
            (B, x, 0, 50, 100, w, &[(100, A, x), (100, B, x)]),
            (A, x, 20, 70, 120, 0, &[(100, A, x), (100, B, x)]), // kept past 70: left alone
            (A, x, 60, 110, 160, 0, &[(160, A, x), (100, B, x)]), // same rank, kept longer
            (B, x, 120, 170, 220, w, &[(160, A, x), (220, B, x)]), // B lapsed: back of the line
            (B, x, 130, 180, 230, w, &[(160, A, x), (220, B, x)]),
            (A, s, 130, 180, 230, 0, &[(230, A, s), (220, B, x)]), // the kind follows the claim
            (B, x, 140, 190, 240, 1, &[(230, A, s), (220, B, x)]), // a reader weighs 1
            (B, x, 210, 260, 310, 1, &[(230, A, s), (310, B, x)]),
            (B, x, 240, 290, 340, 0, &[(310, B, x)]), // A lapsed: gone, B first
        ];
        for (i, (owner, kind, now, enough, until, ahead, after)) in steps.into_iter().enumerate() {
            assert_eq!(
                line.keep(owner, kind, now, enough, until),
                ahead,
                "step {i}"
            );
            assert_eq!(line.places, places(after), "step {i}");
        }
        assert!(line.leave(B));
        assert!(!line.leave(B));
        assert!(line.places.is_empty());
    }

    #[test]
    fn written_in_place_only_when_changed_and_never_shorter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.line");
        let text = || std::fs::read_to_string(&path).unwrap();
        let mut line = Line::read(&path).unwrap();
        line.keep(A, Kind::Exclusive, 0, 0, 100);
        line.keep(B, Kind::Exclusive, 0, 0, 100);
        line.write(&path).unwrap();
        let full = format!("100 {A}\n100 {B}\n");
        assert_eq!(text(), full);
        let mut line = Line::read(&path).unwrap();
        line.leave(A);
        line.write(&path).unwrap();
        assert_eq!(text().len(), full.len(), "padded, not cut");
        assert_eq!(parse(&text()), places(&[(100, B, Kind::Exclusive)]));
        let mut line = Line::read(&path).unwrap();
        line.leave(B);
        line.write(&path).unwrap();
        assert_eq!(text(), "\n".repeat(full.len()));
        assert!(parse(&text()).is_empty());

        // A crowd's file is cut back once its line empties.
        let mut line = Line::read(&path).unwrap();
        for i in 0..200 {
            line.keep(&format!("{i:032}"), sem(3), 0, 0, 100);
        }
        line.write(&path).unwrap();
        assert!(text().len() > 4096);
        let mut line = Line::read(&path).unwrap();
        for i in 0..200 {
            line.leave(&format!("{i:032}"));
        }
        line.write(&path).unwrap();
        assert_eq!(text(), "\n");

        let untouched = Line::read(&dir.path().join("y.line")).unwrap();
        untouched.write(&dir.path().join("y.line")).unwrap();
        assert!(!dir.path().join("y.line").exists(), "no change, no file");
    }
}

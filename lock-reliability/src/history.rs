//! The history a worker writes: one line per event, appended as it happens, so a worker
//! killed with `SIGKILL` leaves every event before its death on disk.
//!
//! A line is `<t_ns> <kind> <hold> [<field>…]`; `t_ns` is on `CLOCK_MONOTONIC`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use lock::Kind;

/// One acquisition by one worker: its process id and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldId {
    /// The worker's process id.
    pub pid: u32,
    /// The worker's n-th attempt.
    pub n: u32,
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pid, self.n)
    }
}

impl FromStr for HoldId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (pid, n) = s.split_once('.').ok_or_else(|| format!("hold id {s:?}"))?;
        Ok(Self {
            pid: pid.parse().map_err(|_| format!("hold id {s:?}"))?,
            n: n.parse().map_err(|_| format!("hold id {s:?}"))?,
        })
    }
}

/// The word a history writes for a lease kind: `x` (exclusive), `s` (shared), `p3` (one of 3
/// permits).
pub fn kind_word(kind: Kind) -> String {
    match kind.normalized() {
        Kind::Shared => "s".into(),
        Kind::Permit(n) => format!("p{n}"),
        _ => "x".into(),
    }
}

/// The kind [`kind_word`] wrote.
pub fn parse_kind_word(word: &str) -> Option<Kind> {
    match word {
        "x" => Some(Kind::Exclusive),
        "s" => Some(Kind::Shared),
        _ => Some(Kind::permit(word.strip_prefix('p')?.parse().ok()?)),
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An acquisition of this kind was sent (written `invoke <hold>` for an exclusive one,
    /// `invoke <hold> <kind word>` for the others).
    AcquireInvoked {
        /// The kind of lease asked for.
        kind: Kind,
    },
    /// The lock was granted with this token; the guard trusts it until `valid_until`.
    Acquired {
        /// The fencing token.
        token: u64,
        /// [`lock::Guard::valid_until`] on the shared clock.
        valid_until: u64,
    },
    /// Waiting ran out, or the lock was held (no hold).
    NotAcquired,
    /// The acquisition failed with an error (no hold).
    AcquireFailed,
    /// A renewal moved the guard's `valid_until`.
    Renewed {
        /// The new `valid_until`.
        valid_until: u64,
    },
    /// The guard said the lease was lost.
    Lost {
        /// `refused` or `unreachable`.
        reason: String,
    },
    /// Past `valid_until`, the guard had still not said lost a second later.
    NotTold,
    /// A release was sent.
    ReleaseInvoked {
        /// `valid_until` at that moment.
        valid_until: u64,
    },
    /// The release's answer: `released`, `not_owner`, `not_locked` or `error`.
    Released {
        /// The outcome.
        outcome: String,
    },
}

/// An event of a hold at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// When, on `CLOCK_MONOTONIC`.
    pub t: u64,
    /// Whose.
    pub hold: HoldId,
    /// What.
    pub event: Event,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, h) = (self.t, self.hold);
        match &self.event {
            Event::AcquireInvoked { kind } => match kind.normalized() {
                Kind::Exclusive => write!(f, "{t} invoke {h}"),
                kind => write!(f, "{t} invoke {h} {}", kind_word(kind)),
            },
            Event::Acquired { token, valid_until } => {
                write!(f, "{t} acquired {h} {token} {valid_until}")
            }
            Event::NotAcquired => write!(f, "{t} not_acquired {h}"),
            Event::AcquireFailed => write!(f, "{t} failed {h}"),
            Event::Renewed { valid_until } => write!(f, "{t} renewed {h} {valid_until}"),
            Event::Lost { reason } => write!(f, "{t} lost {h} {reason}"),
            Event::NotTold => write!(f, "{t} not_told {h}"),
            Event::ReleaseInvoked { valid_until } => write!(f, "{t} release {h} {valid_until}"),
            Event::Released { outcome } => write!(f, "{t} released {h} {outcome}"),
        }
    }
}

impl FromStr for Line {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        let bad = || format!("history line {s:?}");
        let num = |i: usize| -> Result<u64, String> {
            f.get(i).and_then(|x| x.parse().ok()).ok_or_else(bad)
        };
        let text = |i: usize| -> Result<String, String> {
            f.get(i).map(|x| (*x).to_owned()).ok_or_else(bad)
        };
        let event = match *f.get(1).ok_or_else(bad)? {
            "invoke" => Event::AcquireInvoked {
                kind: match f.get(3) {
                    None => Kind::Exclusive,
                    Some(w) => parse_kind_word(w).ok_or_else(bad)?,
                },
            },
            "acquired" => Event::Acquired {
                token: num(3)?,
                valid_until: num(4)?,
            },
            "not_acquired" => Event::NotAcquired,
            "failed" => Event::AcquireFailed,
            "renewed" => Event::Renewed {
                valid_until: num(3)?,
            },
            "lost" => Event::Lost { reason: text(3)? },
            "not_told" => Event::NotTold,
            "release" => Event::ReleaseInvoked {
                valid_until: num(3)?,
            },
            "released" => Event::Released { outcome: text(3)? },
            _ => return Err(bad()),
        };
        Ok(Self {
            t: num(0)?,
            hold: f.get(2).ok_or_else(bad)?.parse()?,
            event,
        })
    }
}

/// Appends lines to a worker's history file, one `write` each.
#[derive(Debug)]
pub struct Writer(File);

impl Writer {
    /// Opens (creates) the history at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Self)
    }

    /// Appends `event` of `hold`, stamped now.
    pub fn log(&mut self, hold: HoldId, event: Event) {
        let line = Line {
            t: crate::clock::now_ns(),
            hold,
            event,
        };
        self.0
            .write_all(format!("{line}\n").as_bytes())
            .expect("append to the history");
    }
}

/// Reads every history line in `path`. A last line without its newline (torn by a kill in
/// the middle of a write) is dropped, even when it parses: its numbers may be cut short.
pub fn read(path: &Path) -> Result<Vec<Line>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|l| l.parse().map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_as_written() {
        let hold = HoldId { pid: 42, n: 7 };
        let three = Kind::permit(lock::Permits::new(3).unwrap());
        for event in [
            Event::AcquireInvoked {
                kind: Kind::Exclusive,
            },
            Event::AcquireInvoked { kind: Kind::Shared },
            Event::AcquireInvoked { kind: three },
            Event::Acquired {
                token: 9,
                valid_until: 11,
            },
            Event::NotAcquired,
            Event::AcquireFailed,
            Event::Renewed { valid_until: 12 },
            Event::Lost {
                reason: "refused".into(),
            },
            Event::NotTold,
            Event::ReleaseInvoked { valid_until: 13 },
            Event::Released {
                outcome: "not_owner".into(),
            },
        ] {
            let line = Line { t: 5, hold, event };
            assert_eq!(line.to_string().parse::<Line>(), Ok(line));
        }
    }

    #[test]
    fn a_torn_last_line_is_dropped_but_a_torn_middle_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h");
        std::fs::write(&p, "1 invoke 3.1\n2 acquired 3.1 5 1").unwrap();
        assert_eq!(read(&p).unwrap().len(), 1, "parses, but may be cut short");
        std::fs::write(&p, "1 invoke 3.1\n2 acq\n3 invoke 3.2\n").unwrap();
        assert!(read(&p).is_err());
    }
}

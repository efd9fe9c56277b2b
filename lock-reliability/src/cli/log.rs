//! The lane's command log, `commands`: one line per event, each written by a single
//! `write` to a file opened for appending, so lines from many processes never mix. Times are
//! on `CLOCK_MONOTONIC` in nanoseconds.
//!
//! ```text
//! start <command pid> <lock pid> <supervisor pid> <token> <t>
//! seen <by pid> <other pid> alive <t>     other still had a process at t (t after by's start)
//! seen <by pid> <other pid> dead <t>      every process of other was gone by t
//! end <command pid> <t>                   the command ended by itself (its grandchild gone)
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A command started (it holds its alive file's lock from before `t`).
    Start {
        /// The command's pid.
        pid: u32,
        /// The `lock` process above it.
        lock: u32,
        /// The supervisor between them.
        supervisor: u32,
        /// `LOCK_FENCING_TOKEN`.
        token: u64,
        /// When.
        t: u64,
    },
    /// A starting command looked at another's alive file.
    Seen {
        /// The starting command.
        by: u32,
        /// The command looked at.
        other: u32,
        /// Whether a process of it was still alive.
        alive: bool,
        /// For `alive`, a time it was certainly alive; else a time it was certainly gone by.
        t: u64,
    },
    /// A command ended by itself.
    End {
        /// The command's pid.
        pid: u32,
        /// When (its grandchild gone, itself about to exit).
        t: u64,
    },
}

impl Entry {
    /// The line, with its newline.
    pub fn line(&self) -> String {
        match *self {
            Entry::Start {
                pid,
                lock,
                supervisor,
                token,
                t,
            } => format!("start {pid} {lock} {supervisor} {token} {t}\n"),
            Entry::Seen {
                by,
                other,
                alive,
                t,
            } => {
                let state = if alive { "alive" } else { "dead" };
                format!("seen {by} {other} {state} {t}\n")
            }
            Entry::End { pid, t } => format!("end {pid} {t}\n"),
        }
    }

    /// Reads a line back (without its newline).
    pub fn parse(line: &str) -> Result<Self, String> {
        let bad = || format!("a command log line: {line:?}");
        let f: Vec<&str> = line.split(' ').collect();
        let n = |i: usize| -> Result<u64, String> {
            f.get(i).and_then(|s| s.parse().ok()).ok_or_else(bad)
        };
        Ok(match (f.first().copied(), f.len()) {
            (Some("start"), 6) => Entry::Start {
                pid: n(1)? as u32,
                lock: n(2)? as u32,
                supervisor: n(3)? as u32,
                token: n(4)?,
                t: n(5)?,
            },
            (Some("seen"), 5) => Entry::Seen {
                by: n(1)? as u32,
                other: n(2)? as u32,
                alive: match f[3] {
                    "alive" => true,
                    "dead" => false,
                    _ => return Err(bad()),
                },
                t: n(4)?,
            },
            (Some("end"), 3) => Entry::End {
                pid: n(1)? as u32,
                t: n(2)?,
            },
            _ => return Err(bad()),
        })
    }
}

/// The log of the lane in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("commands")
}

/// Appends `entries` to the log in `dir` with one `write`.
pub fn append(dir: &Path, entries: &[Entry]) {
    let text: String = entries.iter().map(Entry::line).collect();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(dir))
        .expect("the command log");
    file.write_all(text.as_bytes())
        .expect("a write to the command log");
}

/// Every complete line of `text`, parsed; the bytes of an unfinished last line are left.
pub fn parse_complete(text: &str) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut used = 0;
    while let Some(nl) = text[used..].find('\n') {
        let line = &text[used..used + nl];
        entries.push(Entry::parse(line).unwrap_or_else(|e| panic!("{e}")));
        used += nl + 1;
    }
    (entries, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_reads_back_as_written() {
        let entries = [
            Entry::Start {
                pid: 7,
                lock: 5,
                supervisor: 6,
                token: 42,
                t: 1_000,
            },
            Entry::Seen {
                by: 7,
                other: 3,
                alive: true,
                t: 1_001,
            },
            Entry::Seen {
                by: 7,
                other: 4,
                alive: false,
                t: 1_002,
            },
            Entry::End { pid: 7, t: 2_000 },
        ];
        let text: String = entries.iter().map(Entry::line).collect();
        let (back, used) = parse_complete(&format!("{text}start 8"));
        assert_eq!(back, entries);
        assert_eq!(used, text.len());
        assert!(Entry::parse("seen 1 2 maybe 3").is_err());
    }
}

//! A fencing-aware resource shared by the worker processes of a lane: a counter that keeps the
//! highest fencing token it has seen and refuses any read or write with a lower one.
//!
//! It is one file, `log`, under its own `flock` (a stand-in for a storage service with its own
//! consistency): one line per access, in the order served, each ending with the counter and
//! the highest token after it. Appending the line is the commit: a worker killed before it
//! changed nothing, and a line torn by a kill is cut off by the next access. A holder reads the
//! counter and writes it back plus one; the lock under test is what keeps two holders from
//! interleaving, and the tokens are what keep a stale holder's late write out.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fs4::FileExt;

use crate::history::HoldId;

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The holder read the counter.
    Read,
    /// The holder wrote the counter.
    Write,
}

/// One access, as the resource served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// When, on `CLOCK_MONOTONIC`.
    pub t: u64,
    /// Read or write.
    pub op: Op,
    /// Who.
    pub hold: HoldId,
    /// With which token.
    pub token: u64,
    /// Whether the resource let it through.
    pub accepted: bool,
    /// The counter after it (the old value when refused).
    pub value: u64,
    /// The highest token seen after it.
    pub max: u64,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Read => "read",
            Op::Write => "write",
        };
        write!(
            f,
            "{} {op} {} {} {} {} {}",
            self.t, self.hold, self.token, self.accepted as u8, self.value, self.max
        )
    }
}

impl FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        let bad = || format!("resource log line {s:?}");
        if f.len() != 7 {
            return Err(bad());
        }
        let num = |i: usize| f[i].parse::<u64>().map_err(|_| bad());
        Ok(Self {
            t: num(0)?,
            op: match f[1] {
                "read" => Op::Read,
                "write" => Op::Write,
                _ => return Err(bad()),
            },
            hold: f[2].parse()?,
            token: num(3)?,
            accepted: num(4)? == 1,
            value: num(5)?,
            max: num(6)?,
        })
    }
}

/// The resource in directory `dir`.
#[derive(Debug, Clone)]
pub struct Resource {
    dir: PathBuf,
}

impl Resource {
    /// The resource kept in `dir` (created empty on first use: token 0, value 0).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Reads the counter with `token`: `None` when a higher token has been seen.
    pub fn read(&self, hold: HoldId, token: u64) -> Option<u64> {
        self.access(hold, Op::Read, token, |v| v)
    }

    /// Writes `value` with `token`: false when a higher token has been seen.
    pub fn write(&self, hold: HoldId, token: u64, value: u64) -> bool {
        self.access(hold, Op::Write, token, |_| value).is_some()
    }

    fn access(&self, hold: HoldId, op: Op, token: u64, f: impl FnOnce(u64) -> u64) -> Option<u64> {
        let mut log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(self.dir.join("log"))
            .expect("the resource's log");
        FileExt::lock(&log).expect("flock the resource");
        let (max, value) = last_state(&log);
        let accepted = token >= max;
        let access = Access {
            t: crate::clock::now_ns(),
            op,
            hold,
            token,
            accepted,
            value: if accepted { f(value) } else { value },
            max: max.max(token),
        };
        log.write_all(format!("{access}\n").as_bytes())
            .expect("append to the resource's log");
        accepted.then_some(access.value)
    }

    /// The highest token seen and the counter's value.
    pub fn state(&self) -> (u64, u64) {
        self.log().last().map_or((0, 0), |a| (a.max, a.value))
    }

    /// Every access in the order served. A line torn by a kill is dropped.
    pub fn log(&self) -> Vec<Access> {
        let text = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        complete
            .lines()
            .map(|l| l.parse().expect("resource log line"))
            .collect()
    }
}

/// The state in the last complete line of the log, after cutting off a line torn by a kill.
fn last_state(log: &File) -> (u64, u64) {
    let len = log.metadata().expect("the log's size").len();
    let from = len.saturating_sub(512);
    let mut tail = vec![0; (len - from) as usize];
    log.read_exact_at(&mut tail, from)
        .expect("read the log's tail");
    if !tail.ends_with(b"\n") {
        let keep = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        log.set_len(from + keep as u64).expect("cut a torn line");
        tail.truncate(keep);
    }
    let text = String::from_utf8(tail).expect("the log is text");
    match text.lines().last() {
        Some(line) => {
            let a: Access = line.parse().expect("a resource log line");
            (a.max, a.value)
        }
        None => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_token_is_refused_after_a_higher_one_was_seen() {
        let dir = tempfile::tempdir().unwrap();
        let r = Resource::new(dir.path());
        let (a, b) = (HoldId { pid: 1, n: 1 }, HoldId { pid: 2, n: 1 });
        assert_eq!(r.read(a, 5), Some(0));
        assert_eq!(r.read(b, 6), Some(0));
        assert!(!r.write(a, 5, 1), "the stale write is refused");
        assert!(r.write(b, 6, 1));
        assert_eq!(r.state(), (6, 1));
        let log = r.log();
        assert_eq!(log.len(), 4);
        assert!(!log[2].accepted && log[2].op == Op::Write && log[2].hold == a);
    }

    #[test]
    fn a_line_torn_by_a_kill_is_cut_off_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = Resource::new(dir.path());
        let a = HoldId { pid: 1, n: 1 };
        assert!(r.write(a, 5, 7));
        let mut log = OpenOptions::new()
            .append(true)
            .open(dir.path().join("log"))
            .unwrap();
        log.write_all(b"123 write 1.1 9 1 99").unwrap(); // no newline: torn
        assert_eq!(r.state(), (5, 7));
        assert_eq!(r.read(a, 5), Some(7));
        assert_eq!(r.log().len(), 2, "the torn line is gone");
    }
}

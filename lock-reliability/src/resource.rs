//! A fencing-aware resource shared by the worker processes of a lane: a counter that keeps the
//! highest fencing token it has seen and refuses any read or write with a lower one.
//!
//! It lives in two files under its own `flock` (a stand-in for a storage service with its own
//! consistency): `state` holds `max_token value`, and `log` gets one line per access, in the
//! order the resource served them. A holder reads the counter and writes it back plus one; the
//! lock under test is what keeps two holders from interleaving, and the tokens are what keep a
//! stale holder's late write out.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
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
    /// The value read or written (the old value when refused).
    pub value: u64,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Read => "read",
            Op::Write => "write",
        };
        write!(
            f,
            "{} {op} {} {} {} {}",
            self.t, self.hold, self.token, self.accepted as u8, self.value
        )
    }
}

impl FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let f: Vec<&str> = s.split_whitespace().collect();
        let bad = || format!("resource log line {s:?}");
        if f.len() != 6 {
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
        let guard = File::create(self.dir.join("resource.lock")).expect("the resource's lock file");
        FileExt::lock(&guard).expect("flock the resource");
        let (max, value) = self.state();
        let accepted = token >= max;
        let new = if accepted { f(value) } else { value };
        if accepted {
            // Write and rename, so a worker killed here leaves the old state or the new one.
            let next = self.dir.join("state.next");
            std::fs::write(&next, format!("{token} {new}")).expect("write the resource's state");
            std::fs::rename(&next, self.dir.join("state")).expect("replace the resource's state");
        }
        let access = Access {
            t: crate::clock::now_ns(),
            op,
            hold,
            token,
            accepted,
            value: new,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .expect("the resource's log");
        log.write_all(format!("{access}\n").as_bytes())
            .expect("append to the resource's log");
        drop(guard); // closing the file releases the flock
        accepted.then_some(new)
    }

    /// The highest token seen and the counter's value.
    pub fn state(&self) -> (u64, u64) {
        match std::fs::read_to_string(self.dir.join("state")) {
            Ok(s) => {
                let mut f = s.split(' ').map(|x| x.parse().expect("resource state"));
                (f.next().expect("token"), f.next().expect("value"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
            Err(e) => panic!("read the resource's state: {e}"),
        }
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
}

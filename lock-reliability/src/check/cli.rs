//! The checker of the CLI lanes: from a lane's command log, the faults and how each `lock`
//! ended, count overlapping commands, locks stuck after a fault, and pauses after which `lock`
//! did not exit 76 (lost).
//!
//! A command runs from its `start` to the death of the last of its processes. That death is
//! known only within bounds: after its `end` line and after any time another command saw it
//! alive, before any time another saw it gone. Two commands overlap for certain when one
//! started before the other's lower bound: a process of the first was alive after the second
//! had started.

use std::collections::HashMap;

use super::{Rules, Tally};
use crate::cli::log::Entry;

/// What a fault does to a `lock run` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strike {
    /// `SIGKILL` of `lock` alone.
    KillLock,
    /// `SIGKILL` of `lock`'s group, the supervisor's and the command's: the whole worker.
    KillAll,
    /// `SIGSTOP` of `lock` until another command started (or a ttl and 3 s), then `SIGCONT`.
    PauseLock,
    /// `SIGTERM` of `lock`.
    TermLock,
}

/// A fault struck on a running command's `lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliFault {
    /// What was done.
    pub strike: Strike,
    /// The command that was running.
    pub command: u32,
    /// Its `lock`.
    pub lock: u32,
    /// When.
    pub t: u64,
    /// For a pause, when `lock` was continued.
    pub cont: Option<u64>,
}

/// Everything one CLI lane left behind.
#[derive(Debug, Clone, Default)]
pub struct CliRecord {
    /// The command log.
    pub entries: Vec<Entry>,
    /// The faults.
    pub faults: Vec<CliFault>,
    /// How each `lock` ended (exit code, or 128 + signal), by pid.
    pub exits: HashMap<u32, i32>,
    /// When the run stopped injecting faults.
    pub end: u64,
    /// Panics on the lane's stderr.
    pub panics: usize,
}

/// `lock`'s exit code when its lease was lost (or its command stopped for want of a renewal).
const EXIT_LOST: i32 = 76;

/// One command, as the log tells it.
#[derive(Debug, Clone)]
struct Run {
    pid: u32,
    start: u64,
    /// It ended by itself at this time.
    ended: Option<u64>,
    /// A process of it was alive at this time (the latest known).
    alive_until: u64,
}

/// Checks one CLI lane.
pub fn check(rec: &CliRecord, rules: Rules) -> Tally {
    let mut t = Tally {
        panics: rec.panics as u64,
        ..Tally::default()
    };
    let runs = runs(&rec.entries);
    t.holds = runs.len() as u64;

    // Overlaps: in order of start, one that started before the latest lower bound of the
    // death of any earlier one.
    let mut latest = 0;
    for r in &runs {
        if r.start < latest {
            t.overlapping_commands += 1;
        }
        latest = latest.max(r.alive_until);
    }

    let next_start_after = |at: u64| runs.iter().map(|r| r.start).filter(|&s| s > at).min();
    for f in &rec.faults {
        let Some(victim) = runs
            .iter()
            .filter(|r| r.pid == f.command && r.start <= f.t)
            .max_by_key(|r| r.start)
        else {
            continue;
        };
        if victim.ended.is_some_and(|e| e < f.t) {
            continue; // it had ended by itself: a miss
        }
        t.faults += 1;
        match next_start_after(f.t) {
            // A pause's retake waits for the lease's end by design: not a figure of freeing.
            Some(next)
                if next - f.t <= rules.free_again_within() && f.strike != Strike::PauseLock =>
            {
                t.max_free_ms = t.max_free_ms.max((next - f.t) / 1_000_000);
            }
            Some(next) if next - f.t <= rules.free_again_within() => {}
            Some(_) => t.stuck += 1,
            None if rec.end.saturating_sub(f.t) > rules.free_again_within() => t.stuck += 1,
            None => {}
        }
        if f.strike == Strike::PauseLock
            && victim.ended.is_none()
            && rec.exits.get(&f.lock) != Some(&EXIT_LOST)
        {
            t.pause_exits_not_lost += 1;
        }
    }
    t
}

/// Every command in the log, in order of start.
fn runs(entries: &[Entry]) -> Vec<Run> {
    let mut runs: Vec<Run> = entries
        .iter()
        .filter_map(|e| match *e {
            Entry::Start { pid, t, .. } => Some(Run {
                pid,
                start: t,
                ended: None,
                alive_until: t,
            }),
            _ => None,
        })
        .collect();
    runs.sort_by_key(|r| r.start);
    // The run of `pid` at `t`: the latest to start before it (pids come round again).
    let at = |runs: &mut Vec<Run>, pid: u32, t: u64| -> Option<usize> {
        runs.iter()
            .enumerate()
            .filter(|(_, r)| r.pid == pid && r.start <= t)
            .max_by_key(|(_, r)| r.start)
            .map(|(i, _)| i)
    };
    for e in entries {
        match *e {
            Entry::End { pid, t } => {
                if let Some(i) = at(&mut runs, pid, t) {
                    runs[i].ended = Some(t);
                    runs[i].alive_until = runs[i].alive_until.max(t);
                }
            }
            Entry::Seen {
                other,
                alive: true,
                t,
                ..
            } => {
                if let Some(i) = at(&mut runs, other, t) {
                    runs[i].alive_until = runs[i].alive_until.max(t);
                }
            }
            _ => {}
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: u64 = 1_000_000;

    fn rules() -> Rules {
        Rules {
            expires: true,
            frees_on_death: false,
            ttl: Duration::from_secs(1),
            starve_after: None,
        }
    }

    fn start(pid: u32, lock: u32, t: u64) -> Entry {
        Entry::Start {
            pid,
            lock,
            supervisor: lock + 1,
            token: u64::from(pid),
            t,
        }
    }

    fn seen(by: u32, other: u32, alive: bool, t: u64) -> Entry {
        Entry::Seen {
            by,
            other,
            alive,
            t,
        }
    }

    #[test]
    fn commands_one_after_another_do_not_overlap() {
        let rec = CliRecord {
            entries: vec![
                start(10, 1, 100 * MS),
                Entry::End {
                    pid: 10,
                    t: 300 * MS,
                },
                start(20, 2, 301 * MS),
                seen(20, 10, false, 302 * MS),
                start(30, 3, 900 * MS),
                seen(30, 20, false, 901 * MS),
            ],
            end: 1_000 * MS,
            ..CliRecord::default()
        };
        let t = check(&rec, rules());
        assert_eq!(t.holds, 3);
        assert_eq!(t.overlapping_commands, 0);
    }

    #[test]
    fn a_command_seen_alive_after_another_started_is_an_overlap() {
        let rec = CliRecord {
            entries: vec![
                start(10, 1, 100 * MS),
                start(20, 2, 200 * MS),
                seen(20, 10, true, 201 * MS),
                Entry::End {
                    pid: 20,
                    t: 300 * MS,
                },
            ],
            end: 1_000 * MS,
            ..CliRecord::default()
        };
        assert_eq!(check(&rec, rules()).overlapping_commands, 1);
    }

    #[test]
    fn a_command_that_ends_after_another_started_is_an_overlap() {
        let rec = CliRecord {
            entries: vec![
                start(10, 1, 100 * MS),
                start(20, 2, 200 * MS),
                Entry::End {
                    pid: 10,
                    t: 250 * MS,
                },
            ],
            end: 1_000 * MS,
            ..CliRecord::default()
        };
        assert_eq!(check(&rec, rules()).overlapping_commands, 1);
    }

    #[test]
    fn a_reused_pid_is_a_new_command() {
        // Pid 10 again, long after its first command was seen gone.
        let rec = CliRecord {
            entries: vec![
                start(10, 1, 100 * MS),
                start(20, 2, 200 * MS),
                seen(20, 10, false, 201 * MS),
                Entry::End {
                    pid: 20,
                    t: 300 * MS,
                },
                start(10, 3, 400 * MS),
                seen(10, 20, false, 401 * MS),
                Entry::End {
                    pid: 10,
                    t: 500 * MS,
                },
            ],
            end: 1_000 * MS,
            ..CliRecord::default()
        };
        let t = check(&rec, rules());
        assert_eq!((t.holds, t.overlapping_commands), (3, 0));
    }

    #[test]
    fn a_lock_not_taken_again_after_a_kill_is_stuck_and_a_quick_one_is_timed() {
        let fault = |command, lock, t| CliFault {
            strike: Strike::KillAll,
            command,
            lock,
            t,
            cont: None,
        };
        let rec = CliRecord {
            entries: vec![
                start(10, 1, 100 * MS),
                start(20, 2, 150 * MS),
                start(30, 3, 5_000 * MS),
            ],
            faults: vec![fault(10, 1, 120 * MS), fault(20, 2, 160 * MS)],
            end: 6_000 * MS,
            ..CliRecord::default()
        };
        let t = check(&rec, rules());
        assert_eq!(t.faults, 2);
        assert_eq!(t.stuck, 1);
        assert_eq!(t.max_free_ms, 30);
    }

    #[test]
    fn a_pause_must_end_in_exit_76_unless_the_command_ended_by_itself() {
        let pause = |command, lock, t| CliFault {
            strike: Strike::PauseLock,
            command,
            lock,
            t,
            cont: Some(t + 1_500 * MS),
        };
        let rec = CliRecord {
            entries: vec![
                start(10, 1, 100 * MS),
                start(20, 2, 1_200 * MS),
                seen(20, 10, false, 1_201 * MS),
                start(30, 3, 2_400 * MS),
                seen(30, 20, false, 2_401 * MS),
                start(40, 4, 3_600 * MS),
                seen(40, 30, false, 3_601 * MS),
            ],
            faults: vec![
                pause(10, 1, 110 * MS),
                pause(20, 2, 1_210 * MS),
                pause(30, 3, 2_410 * MS),
            ],
            exits: HashMap::from([(1, 76), (2, 0), (3, 143)]),
            end: 4_000 * MS,
            ..CliRecord::default()
        };
        let t = check(&rec, rules());
        assert_eq!(t.faults, 3);
        assert_eq!(t.pause_exits_not_lost, 2);
        assert_eq!(t.overlapping_commands, 0);
    }
}

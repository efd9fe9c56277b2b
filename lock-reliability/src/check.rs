//! The history checker: from the workers' histories, the resource's log and the faults the
//! runner injected, count every broken promise of one lane.
//!
//! A hold counts from its grant (`acquired`) to the first of: its release being sent, the
//! guard saying lost, the death of its process, and, for leases with a ttl, its
//! `valid_until` (the send time of its last successful renewal plus the ttl, before which the
//! backend cannot have expired it). For session locks, which have no ttl, a fault that ends
//! the connection (server kill, `pg_terminate_backend`) also ends the hold. Holds
//! overlapping in that sense are holders in at once: more than one on an exclusive lock, more
//! than N on a semaphore of N, a writer with anyone else on a reader-writer lock (each hold
//! takes its kind's [weight](lock::Kind::weight) of the [capacity](lock::Kind::capacity)).

pub mod cli;

use std::collections::HashMap;
use std::time::Duration;

use lock::Kind;
use serde::Serialize;

use crate::clock::Step;
use crate::history::{Event, HoldId, Line};
use crate::resource::{Access, Op};

/// A fault the runner injected, on the shared clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A worker was killed with `SIGKILL` at `t`.
    Kill {
        /// The worker.
        pid: u32,
        /// When.
        t: u64,
        /// The backend still named it the holder after its death: the kill hit a hold even
        /// if the worker died before it could write `acquired` down.
        confirmed: bool,
        /// On a lock with several holders (a semaphore, readers): when the runner saw the
        /// dead worker gone from the holders (`None`: still listed when it stopped looking).
        gone: Option<u64>,
    },
    /// A worker was stopped (`SIGSTOP`) at `stop` and continued at `cont`.
    Pause {
        /// The worker.
        pid: u32,
        /// When `SIGSTOP` was sent.
        stop: u64,
        /// When every thread of the process was seen stopped: until then it may still act (a
        /// busy machine delivers a signal late), so it holds a lock at the stop only if it
        /// still held it then.
        stopped: u64,
        /// When it was continued.
        cont: u64,
        /// It stopped the process inside an operation on a lock file, holding the file's
        /// `flock`: a different fault, counted apart (nobody can take such a lock until the
        /// process runs again).
        mid_operation: bool,
    },
    /// A worker died of a signal that the runner did not send: something outside the run
    /// killed it (the OOM killer, or someone's `kill -9` of every stopped `lock-reliability`
    /// process while cleaning up after another run on the same machine). Not a fault of the
    /// library's: the run was disturbed, and says so ([`Tally::outside_deaths`]). When it died
    /// is not known, only that it was after its last history line: its hold is taken to end
    /// there, so that the locks its death freed (a tied lease ends with its process) are not
    /// counted as grants beside it.
    Outside {
        /// The worker.
        pid: u32,
        /// The signal that ended it.
        signal: i32,
    },
    /// A worker that did not stop by itself at the end of the run was killed (not a fault).
    Straggler {
        /// The worker.
        pid: u32,
        /// When.
        t: u64,
    },
    /// The server was killed with `SIGKILL` at `down` and was back at `up`.
    ServerRestart {
        /// When it was killed.
        down: u64,
        /// When it answered again.
        up: u64,
    },
    /// Every client connection was ended with `pg_terminate_backend`, somewhere between `t`
    /// (the runner set out: `psql` starts, connects, lists the connections) and `done` (each
    /// of those backends had exited).
    Terminate {
        /// When the runner set out.
        t: u64,
        /// When `psql` returned: every connection it listed was gone.
        done: u64,
    },
}

impl Fault {
    /// Whether it ends the connections of session locks, and the window it may do so in:
    /// a session hold granted before the window's end may have ended at its start.
    fn ends_sessions(&self) -> Option<(u64, u64)> {
        match *self {
            Fault::ServerRestart { down, .. } => Some((down, down)),
            Fault::Terminate { t, done } => Some((t, done)),
            _ => None,
        }
    }

    /// When the lock must be usable again after a server fault.
    fn recovered_by(&self) -> Option<u64> {
        match *self {
            Fault::ServerRestart { up, .. } => Some(up),
            Fault::Terminate { done, .. } => Some(done),
            _ => None,
        }
    }
}

/// What the checker judges a lane by.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Leases expire by a ttl (false for session locks).
    pub expires: bool,
    /// A killed holder frees the lock at once: its lease is tied to its process (the file
    /// backend's ties), so a grant before its lease's end is no early grant, and the lock must
    /// be free again within the slack alone.
    pub frees_on_death: bool,
    /// The ttl the workers used.
    pub ttl: Duration,
    /// A writer that waited longer than this while readers were granted after it started
    /// waiting is starved; `None` where a backend has no fair line (there a release goes to
    /// whichever waiter asks first, by design) and in lanes without readers.
    pub starve_after: Option<Duration>,
}

/// The starvation bound of a reader-writer lane at `ttl` and holds of up to `hold_max`: a
/// writer waits for the holds in or ahead of it in line to end (a hold, or a ttl for a holder
/// stopped or killed), twice over (the holders, then those standing ahead of it), and for a
/// waiter ahead of it that died to lose its place ([`lock::raw::LINE_PATIENCE`]).
pub fn starve_bound(ttl: Duration, hold_max: Duration) -> Duration {
    2 * (ttl + hold_max) + lock::raw::LINE_PATIENCE
}

impl Rules {
    /// How soon after a holder's death the lock must be granted again: its ttl plus a
    /// second with a ttl, a second without (the server sees the connection close).
    fn free_again_within(&self) -> u64 {
        let slack = Duration::from_secs(1);
        (if self.expires && !self.frees_on_death {
            self.ttl + slack
        } else {
            slack
        })
        .as_nanos() as u64
    }
}

/// Everything one lane left behind.
#[derive(Debug, Clone, Default)]
pub struct LaneRecord {
    /// Every worker's history.
    pub lines: Vec<Line>,
    /// The resource's log, in the order it served.
    pub accesses: Vec<Access>,
    /// The resource's counter at the end.
    pub final_value: u64,
    /// The lane's faults and the server faults.
    pub faults: Vec<Fault>,
    /// Worker panics seen on stderr.
    pub panics: usize,
    /// When the run stopped injecting faults.
    pub end: u64,
    /// Steps of the wall clock against the monotonic one during the run (see
    /// [`ClockWatch`](crate::clock::ClockWatch)): printed beside each early grant.
    pub clock_steps: Vec<Step>,
}

/// The counts of one lane, or the sum of several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Grants.
    pub holds: u64,
    /// Faults that hit: a kill or pause of a holder, a server restart, a termination (server
    /// faults are added by the runner, once per run rather than once per lane).
    pub faults: u64,
    /// Exclusive lanes: holds that began while another was still in.
    pub overlaps: u64,
    /// Semaphore lanes: holds that began while the capacity (3) was already taken.
    pub over_capacity: u64,
    /// Reader-writer lanes: a writer's hold beside any other hold (a reader's or a writer's).
    pub writer_overlaps: u64,
    /// Reader-writer lanes: writers that waited longer than [`starve_bound`] while readers
    /// were granted after they had started waiting.
    pub starved_writers: u64,
    /// Two grants of the lane with the same token.
    pub repeated_tokens: u64,
    /// CLI lanes: commands that started while a process of another holder's command was
    /// alive.
    pub overlapping_commands: u64,
    /// CLI lanes: pauses of `lock` past the ttl whose command the supervisor stopped, after
    /// which `lock` did not exit 76 (lost).
    pub pause_exits_not_lost: u64,
    /// Accepted increments missing from the counter.
    pub lost_updates: u64,
    /// Grants whose token was not above the previous grant's, and refusals of the newest
    /// holder by the resource.
    pub token_regressions: u64,
    /// Writes the resource accepted after a later holder had already used it.
    pub stale_writes_accepted: u64,
    /// Writes the resource refused (the fencing at work; not a violation).
    pub stale_writes_refused: u64,
    /// Releases by a paused holder that went through after another had taken the lock.
    pub stale_releases: u64,
    /// Holds that were taken over without being told (neither by the guard nor by a release
    /// answering not-owner), and holds whose guard had not said lost a second past
    /// `valid_until`.
    pub not_told: u64,
    /// Faults after which the lock was not granted again in time.
    pub stuck: u64,
    /// Grants that came before the previous holder's lease can have expired.
    pub early: u64,
    /// Guard losses on holds no fault touched.
    pub spurious_losses: u64,
    /// Worker panics.
    pub panics: u64,
    /// Acquisitions that failed with an error (servers down; not a violation).
    pub errors: u64,
    /// Pauses that stopped a holder inside an operation on its lock file (not counted as
    /// faults: see [`Fault::Pause`]).
    pub paused_mid_operation: u64,
    /// Slowest grant after a holder was killed, in ms.
    pub max_free_ms: u64,
    /// Steps of the wall clock against the monotonic one (not a violation: a condition the
    /// judgements assume away, reported so that an early grant can be read beside it).
    pub clock_steps: u64,
    /// Workers that died of a signal the runner did not send ([`Fault::Outside`]): the run was
    /// disturbed from outside, and its other columns may blame the library for it.
    pub outside_deaths: u64,
    /// What each early grant looked like: the runner prints these.
    #[serde(skip)]
    pub early_details: Vec<String>,
}

impl Tally {
    /// Adds `other` in.
    pub fn add(&mut self, o: &Tally) {
        self.holds += o.holds;
        self.faults += o.faults;
        self.overlaps += o.overlaps;
        self.over_capacity += o.over_capacity;
        self.writer_overlaps += o.writer_overlaps;
        self.starved_writers += o.starved_writers;
        self.repeated_tokens += o.repeated_tokens;
        self.overlapping_commands += o.overlapping_commands;
        self.pause_exits_not_lost += o.pause_exits_not_lost;
        self.lost_updates += o.lost_updates;
        self.token_regressions += o.token_regressions;
        self.stale_writes_accepted += o.stale_writes_accepted;
        self.stale_writes_refused += o.stale_writes_refused;
        self.stale_releases += o.stale_releases;
        self.not_told += o.not_told;
        self.stuck += o.stuck;
        self.early += o.early;
        self.spurious_losses += o.spurious_losses;
        self.panics += o.panics;
        self.errors += o.errors;
        self.paused_mid_operation += o.paused_mid_operation;
        self.max_free_ms = self.max_free_ms.max(o.max_free_ms);
        self.clock_steps += o.clock_steps;
        self.outside_deaths += o.outside_deaths;
        self.early_details.extend(o.early_details.iter().cloned());
    }

    /// The sum of every violation column (spurious losses count only where `strict`).
    pub fn violations(&self, strict_losses: bool) -> u64 {
        self.overlaps
            + self.over_capacity
            + self.writer_overlaps
            + self.starved_writers
            + self.repeated_tokens
            + self.overlapping_commands
            + self.pause_exits_not_lost
            + self.lost_updates
            + self.token_regressions
            + self.stale_writes_accepted
            + self.stale_releases
            + self.not_told
            + self.stuck
            + self.early
            + self.panics
            + self.outside_deaths
            + if strict_losses {
                self.spurious_losses
            } else {
                0
            }
    }
}

/// One grant, as the histories tell it.
#[derive(Debug, Clone)]
struct Hold {
    id: HoldId,
    /// Exclusive (a writer, in a reader-writer lane), shared (a reader), or a permit.
    kind: Kind,
    /// When its worker started to acquire it (its `invoke` line; `sent` without one).
    invoked: u64,
    /// When the winning try was sent: the grant came after.
    sent: u64,
    /// When the worker wrote the grant down: the grant came before.
    ok: u64,
    token: u64,
    /// The latest `valid_until` the worker recorded.
    valid_until: u64,
    release_sent: Option<u64>,
    release_outcome: Option<String>,
    lost_at: Option<u64>,
    not_told: bool,
    /// When its process died (killed, or killed as a straggler).
    died: Option<u64>,
    /// End of the hold: see the module doc.
    end: u64,
}

/// Checks one lane.
pub fn check(rec: &LaneRecord, rules: Rules) -> Tally {
    let mut t = Tally::default();
    let holds = holds(rec, rules);
    t.holds = holds.len() as u64;
    t.panics = rec.panics as u64;
    t.errors = rec
        .lines
        .iter()
        .filter(|l| l.event == Event::AcquireFailed)
        .count() as u64;

    // A grant happened between the send of the try that won (`sent`) and the moment the
    // worker wrote `acquired` down (`ok`); a worker stopped in between writes it down late.
    // Every judgement below is one that holds wherever in that window the grant fell.

    // No more in than the capacity: a hold is [grant, end]; holds are in together for certain
    // at the latest of their `ok`s when that comes before each one's end. At each grant, the
    // holds in for certain are those written down before it and not ended; their weights
    // and its own must fit its kind's capacity (one exclusive hold alone, 3 permits, readers
    // without a writer). (A hold written down after its own end is empty.)
    // (Two writers in at once on a reader-writer lock are a writer with another.)
    let has_readers = holds.iter().any(|h| h.kind == Kind::Shared);
    let mut live: Vec<usize> = Vec::new();
    for (j, h) in holds.iter().enumerate().filter(|(_, h)| h.ok < h.end) {
        live.retain(|&i| holds[i].end > h.ok);
        let weight: u64 = live.iter().map(|&i| weight(&holds[i])).sum::<u64>() + weight(h);
        if weight > u64::from(h.kind.capacity()) {
            let mut kinds = live.iter().map(|&i| holds[i].kind).chain([h.kind]);
            if kinds.any(|k| matches!(k, Kind::Permit(_))) {
                t.over_capacity += 1;
            } else if has_readers {
                t.writer_overlaps += 1;
            } else {
                t.overlaps += 1;
            }
        }
        live.push(j);
    }
    // Every grant has a token of its own.
    let mut seen = std::collections::HashSet::new();
    t.repeated_tokens = holds.iter().filter(|h| !seen.insert(h.token)).count() as u64;
    // Tokens rise in order of entry (over every kind and permit: the next grant on the name
    // has a higher token than every earlier one): a hold granted for certain before another
    // (its `ok` before the other's `sent`) has the lower token.
    let mut by_sent: Vec<&Hold> = holds.iter().collect();
    by_sent.sort_by_key(|h| h.sent);
    let (mut i, mut highest) = (0, None::<u64>);
    for h in by_sent {
        while i < holds.len() && holds[i].ok < h.sent {
            highest = highest.max(Some(holds[i].token));
            i += 1;
        }
        if highest.is_some_and(|top| top >= h.token) {
            t.token_regressions += 1;
        }
    }

    // The resource: no stale write accepted, no lost increment.
    let by_id: HashMap<HoldId, &Hold> = holds.iter().map(|h| (h.id, h)).collect();
    let window = |id: &HoldId| by_id.get(id).map_or((0, 0), |h| (h.sent, h.ok));
    // Of the holds that used the resource so far: the latest `sent`, and the hold whose token
    // the resource now keeps.
    let mut latest_sent = 0;
    let mut keeper: Option<HoldId> = None;
    let mut accepted_writes: u64 = 0;
    for a in &rec.accesses {
        let (sent, ok) = window(&a.hold);
        match (a.op, a.accepted) {
            (Op::Write, true) => {
                accepted_writes += 1;
                // A holder granted for certain after this one had already used it.
                if latest_sent > ok {
                    t.stale_writes_accepted += 1;
                }
            }
            (Op::Write, false) => t.stale_writes_refused += 1,
            (Op::Read, _) => {}
        }
        if !a.accepted && keeper.is_some_and(|k| window(&k).1 < sent) {
            // Refused for a token of a hold granted for certain before this one.
            t.token_regressions += 1;
        }
        if a.accepted {
            keeper = Some(a.hold);
        }
        latest_sent = latest_sent.max(sent);
    }
    t.lost_updates = accepted_writes.abs_diff(rec.final_value);

    // Faults: did each hit a holder, was the lock free again in time, never too early.
    let next_grant_after = |at: u64| holds.iter().map(|h| h.ok).filter(|&ok| ok > at).min();
    // The first grant after `at` that needed the room of hold `i` (which the fault hit): the
    // holds in for certain at that grant, with `i` counted in, would take more than the
    // capacity. On an exclusive lock that is any grant; on a semaphore, one while two others
    // hold; on a reader-writer lock, a writer's, or a reader's while `i` wrote.
    // Only a grant that came after hold `i`'s can have taken its room: one with a lower token
    // was granted before it (tokens rise in grant order), however late its worker wrote it
    // down; and a hold written down after its own end held nothing.
    let next_needing = |i: usize, at: u64| {
        holds
            .iter()
            .filter(|g| g.ok > at && g.ok < g.end && g.token > holds[i].token)
            .find(|g| {
                let cap = u64::from(g.kind.capacity());
                let mut w = weight(&holds[i]) + weight(g);
                if w > cap {
                    return true;
                }
                for (k, h) in holds.iter().enumerate() {
                    if k != i && h.id != g.id && h.ok <= g.ok && h.end > g.ok {
                        w += weight(h);
                    }
                }
                w > cap
            })
            .map(|g| g.ok)
    };
    let mut touched = vec![false; holds.len()];
    for f in &rec.faults {
        match *f {
            Fault::Kill {
                pid,
                t: at,
                confirmed,
                gone,
            } => {
                let hit = holding(&holds, pid, at);
                if hit.is_none() && !confirmed {
                    continue;
                }
                if let Some(i) = hit {
                    touched[i] = true;
                }
                t.faults += 1;
                // The grant that took the dead hold's room: before the lease could have
                // expired, an early grant.
                let needing = hit.and_then(|i| next_needing(i, at));
                if let (Some(i), Some(next)) = (hit, needing)
                    && rules.expires
                    && !rules.frees_on_death
                    && next < holds[i].valid_until
                    && next - at <= rules.free_again_within()
                {
                    t.early += 1;
                    t.early_details
                        .push(early(&holds, &holds[i], next, at, &rec.clock_steps));
                }
                let shares_room = hit.is_some_and(|i| holds[i].kind != Kind::Exclusive);
                if shares_room {
                    // A permit or a reader's share: its room is free again once the backend
                    // no longer lists the dead holder (whether or not anyone wanted it then).
                    match gone {
                        Some(g) if g.saturating_sub(at) <= rules.free_again_within() => {
                            t.max_free_ms = t.max_free_ms.max(g.saturating_sub(at) / 1_000_000);
                        }
                        _ => t.stuck += 1,
                    }
                    continue;
                }
                match needing.or_else(|| next_grant_after(at)) {
                    Some(next) if next - at <= rules.free_again_within() => {
                        t.max_free_ms = t.max_free_ms.max((next - at) / 1_000_000);
                    }
                    Some(_) => t.stuck += 1,
                    None if rec.end.saturating_sub(at) > rules.free_again_within() => t.stuck += 1,
                    None => {}
                }
            }
            Fault::Pause {
                pid,
                stop,
                stopped,
                cont,
                mid_operation,
            } => {
                let hit = holding(&holds, pid, stopped.max(stop));
                if mid_operation {
                    // Counted whether or not it hit a hold: a stop inside the release that
                    // ends one (after `release` was written down) freezes the lock all the same.
                    if let Some(i) = hit {
                        touched[i] = true;
                    }
                    t.paused_mid_operation += 1;
                    continue;
                }
                let Some(i) = hit else {
                    continue;
                };
                touched[i] = true;
                t.faults += 1;
                let h = &holds[i];
                let taken = next_needing(i, stop).filter(|&n| n < cont);
                if !rules.expires {
                    continue; // a session lock stays held while paused: overlaps tell
                }
                match taken {
                    Some(next) => {
                        // A tied lease ends with its process: a holder that died while stopped
                        // (killed from outside, at a time not known) freed its room then.
                        let died_tied = rules.frees_on_death && h.died.is_some();
                        if next < h.valid_until && !died_tied {
                            t.early += 1;
                            t.early_details
                                .push(early(&holds, h, next, stop, &rec.clock_steps));
                        }
                        if h.release_outcome.as_deref() == Some("released") {
                            t.stale_releases += 1;
                        }
                        // Told: by its guard, or by its release answering that it no longer
                        // held the lock (a pause after the worker last asked its guard).
                        let release_told = matches!(
                            h.release_outcome.as_deref(),
                            Some("not_owner" | "not_locked")
                        );
                        if h.lost_at.is_none() && h.died.is_none() && !release_told {
                            t.not_told += 1;
                        }
                    }
                    None if cont.saturating_sub(h.valid_until) > rules.free_again_within() => {
                        t.stuck += 1
                    }
                    None => {}
                }
            }
            // Counted once per run by the runner, not once per lane.
            Fault::ServerRestart { .. } | Fault::Terminate { .. } => {
                let from = f.recovered_by().expect("a server fault");
                let first = next_grant_after(from);
                let limit = Duration::from_secs(10).as_nanos() as u64;
                match first {
                    Some(g) if g - from <= limit => {}
                    None if rec.end.saturating_sub(from) <= limit => {}
                    _ => t.stuck += 1,
                }
                let (from, to) = f.ends_sessions().expect("a server fault");
                for (i, h) in holds.iter().enumerate() {
                    if h.sent < to && h.end >= from {
                        touched[i] = true;
                    }
                }
            }
            Fault::Outside { .. } => t.outside_deaths += 1,
            Fault::Straggler { .. } => {}
        }
    }
    t.starved_writers = starved_writers(rec, &holds, rules);
    for (i, h) in holds.iter().enumerate() {
        if h.not_told {
            t.not_told += 1;
        }
        if h.lost_at.is_some() && !touched[i] {
            t.spurious_losses += 1;
        }
    }
    t
}

/// How much of its name's capacity a hold takes.
fn weight(h: &Hold) -> u64 {
    u64::from(h.kind.weight())
}

/// Writers (exclusive claims in a lane that has readers) that waited longer than
/// `rules.starve_after`, from starting to acquire to the grant or giving up, while a reader
/// that started to acquire after them was granted before them (overtook them in line).
/// A wait its worker never finished (killed, or the run ended) is not judged, nor one that a
/// fault cutting every waiter off overlapped, since the contract lets a place lapse when its
/// waiter cannot ask: a stop inside an operation on a lock file (while that process held the
/// file's `flock` no waiter could keep its place; counted apart as `paused_mid_operation`), a
/// server restart, or every connection ended (`pg_terminate_backend`).
fn starved_writers(rec: &LaneRecord, holds: &[Hold], rules: Rules) -> u64 {
    let Some(bound) = rules.starve_after else {
        return 0;
    };
    if !holds.iter().any(|h| h.kind == Kind::Shared) {
        return 0;
    }
    let bound = bound.as_nanos() as u64;
    let mut started: HashMap<HoldId, u64> = HashMap::new();
    let mut waits = Vec::new();
    for l in &rec.lines {
        match l.event {
            Event::AcquireInvoked { kind } if kind.normalized() == Kind::Exclusive => {
                started.insert(l.hold, l.t);
            }
            Event::Acquired { .. } | Event::NotAcquired | Event::AcquireFailed => {
                if let Some(from) = started.remove(&l.hold) {
                    waits.push((from, l.t));
                }
            }
            _ => {}
        }
    }
    let frozen: Vec<(u64, u64)> = rec
        .faults
        .iter()
        .filter_map(|f| match *f {
            Fault::Pause {
                stop,
                cont,
                mid_operation: true,
                ..
            } => Some((stop, cont)),
            Fault::ServerRestart { down, up } => Some((down, up)),
            Fault::Terminate { t, done } => Some((t, done)),
            _ => None,
        })
        .collect();
    waits
        .iter()
        .filter(|&&(from, to)| !frozen.iter().any(|&(stop, cont)| stop < to && from < cont))
        .filter(|&&(from, to)| {
            to.saturating_sub(from) > bound
                && holds
                    .iter()
                    .any(|r| r.kind == Kind::Shared && r.invoked > from && r.ok < to)
        })
        .count() as u64
}

/// An early grant, for a person: the old hold, the fault, the grant that came too soon, and
/// any step of the wall clock in between.
fn early(holds: &[Hold], old: &Hold, next_ok: u64, fault: u64, steps: &[Step]) -> String {
    let next = holds
        .iter()
        .find(|h| h.ok == next_ok)
        .expect("the next grant");
    let between: Vec<String> = steps
        .iter()
        .filter(|s| (old.sent..=next.ok).contains(&s.at))
        .map(|s| format!("{:+} ns at {}", s.ns, s.at))
        .collect();
    let clock = if between.is_empty() {
        "no wall-clock step between them".to_owned()
    } else {
        format!("wall clock stepped {}", between.join(", "))
    };
    format!(
        "hold {} (token {}, sent {}, ok {}, valid until {}); fault at {}; hold {} (token {}, \
         sent {}, ok {}) came {} ns before that valid_until; {clock}",
        old.id,
        old.token,
        old.sent,
        old.ok,
        old.valid_until,
        fault,
        next.id,
        next.token,
        next.sent,
        next.ok,
        old.valid_until - next.ok
    )
}

/// The hold that worker `pid` was in at `at`.
fn holding(holds: &[Hold], pid: u32, at: u64) -> Option<usize> {
    holds
        .iter()
        .position(|h| h.id.pid == pid && h.ok <= at && h.release_sent.is_none_or(|r| r > at))
}

/// Every grant in the lane, in order of grant, with its end.
fn holds(rec: &LaneRecord, rules: Rules) -> Vec<Hold> {
    let mut by_id: HashMap<HoldId, Hold> = HashMap::new();
    let mut kinds: HashMap<HoldId, (Kind, u64)> = HashMap::new();
    let mut lines: Vec<&Line> = rec.lines.iter().collect();
    lines.sort_by_key(|l| l.t);
    for l in lines {
        if let Event::AcquireInvoked { kind } = l.event {
            kinds.insert(l.hold, (kind.normalized(), l.t));
            continue;
        }
        if let Event::Acquired { token, valid_until } = l.event {
            by_id.insert(
                l.hold,
                Hold {
                    id: l.hold,
                    kind: kinds.get(&l.hold).map(|k| k.0).unwrap_or_default(),
                    invoked: kinds.get(&l.hold).map_or(
                        valid_until.saturating_sub(rules.ttl.as_nanos() as u64),
                        |k| k.1,
                    ),
                    sent: valid_until.saturating_sub(rules.ttl.as_nanos() as u64),
                    ok: l.t,
                    token,
                    valid_until,
                    release_sent: None,
                    release_outcome: None,
                    lost_at: None,
                    not_told: false,
                    died: None,
                    end: u64::MAX,
                },
            );
            continue;
        }
        let Some(h) = by_id.get_mut(&l.hold) else {
            continue;
        };
        match &l.event {
            Event::Renewed { valid_until } => h.valid_until = h.valid_until.max(*valid_until),
            Event::Lost { .. } => {
                h.lost_at.get_or_insert(l.t);
            }
            Event::NotTold => h.not_told = true,
            Event::ReleaseInvoked { valid_until } => {
                h.release_sent = Some(l.t);
                h.valid_until = h.valid_until.max(*valid_until);
            }
            Event::Released { outcome } => h.release_outcome = Some(outcome.clone()),
            _ => {}
        }
    }
    let mut holds: Vec<Hold> = by_id.into_values().collect();
    holds.sort_by_key(|h| h.ok);
    // A worker killed from outside was last seen alive at its last history line.
    let last_line = |pid: u32| {
        rec.lines
            .iter()
            .filter(|l| l.hold.pid == pid)
            .map(|l| l.t)
            .max()
    };
    for h in &mut holds {
        for f in &rec.faults {
            let death = match *f {
                Fault::Kill { pid, t, .. } | Fault::Straggler { pid, t } => Some((pid, t)),
                Fault::Outside { pid, .. } => last_line(pid).map(|t| (pid, t)),
                _ => None,
            };
            if let Some((pid, t)) = death
                && pid == h.id.pid
                && t >= h.ok
            {
                h.died = Some(h.died.map_or(t, |d| d.min(t)));
            }
        }
        let mut end = [h.release_sent, h.lost_at, h.died]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
        if rules.expires {
            end = end.min(h.valid_until);
        } else {
            // Ended at the window's start, at the earliest: a hold whose winning try was sent
            // before the window's end may have been granted on a connection the fault ended
            // (the reply can be on its way as the backend exits), so it is then empty, never
            // an overlap.
            for f in &rec.faults {
                if let Some((from, to)) = f.ends_sessions()
                    && to >= h.sent
                {
                    end = end.min(from);
                }
            }
        }
        h.end = end;
    }
    holds
}

#[cfg(test)]
mod tests;

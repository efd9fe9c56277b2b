//! The run's report: every section of every backend, the targets of issue 7 with the figure
//! that decides each and whether it holds, printed as a human table or as one JSON object
//! (`--json`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::cli_run::CliRunReport;
use crate::contention::{ContentionReport, MIX_HOLD_US, Mix, SEMAPHORE_PERMITS};
use crate::durability::DurabilityReport;
use crate::procfs::{Machine, Steal};
use crate::scale::ScaleReport;
use crate::servers::Backend;
use crate::stats::Spread;
use crate::uncontended::UncontendedReport;

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// Small counts (`--quick`): a smoke test, not figures to quote.
    pub quick: bool,
    /// Where it ran.
    pub machine: Machine,
    /// CPU steal over the whole run.
    pub steal: Steal,
    /// One entry per backend, in the order run.
    pub backends: Vec<BackendReport>,
    /// Each target, its figure, and whether it holds.
    pub targets: Vec<Target>,
}

/// One backend's sections.
#[derive(Clone, Debug, Serialize)]
pub struct BackendReport {
    /// Which.
    pub backend: Backend,
    /// CPU steal while this backend was measured.
    pub steal: Steal,
    /// Uncontended acquire + release beside the raw floors.
    pub uncontended: UncontendedReport,
    /// Postgres only: logged/unlogged × synchronous_commit on/off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<DurabilityReport>,
    /// Several processes on one name.
    pub contention: ContentionReport,
    /// The same processes on a semaphore of 3, where the backend has permits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semaphore: Option<ContentionReport>,
    /// The same processes as readers and one writer, where the backend has shared leases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readers_writer: Option<ContentionReport>,
    /// Postgres only: the same with `synchronous_commit = off` (not crash-safe), to show what
    /// durable commits cost a handoff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contention_async: Option<ContentionReport>,
    /// The floor of a handoff, measured in the same run. Files: the same processes passing a
    /// turn round a ring through one file (inotify + `flock`, no library), the kernel's share
    /// of a fair handoff. Postgres: the bare lease SQL handing a name between two connections,
    /// woken by its NOTIFY (two durable commits and a NOTIFY in series). None for Redis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handoff_floor: Option<Spread>,
    /// Many leases, many waiters.
    pub scale: ScaleReport,
    /// Files only: `lock run -- true` beside `flock FILE true`, whole processes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cli_run: Option<CliRunReport>,
}

/// One target of the issue and how this run did.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// The backend.
    pub backend: Backend,
    /// What is measured against what.
    pub what: String,
    /// This run's figure.
    pub value: f64,
    /// The most it may be.
    pub limit: f64,
    /// Unit of value and limit.
    pub unit: String,
    /// `value <= limit`.
    pub held: bool,
}

impl Target {
    fn new(backend: Backend, what: &str, value: f64, limit: f64, unit: &str) -> Self {
        Self {
            backend,
            what: what.to_owned(),
            value,
            limit,
            unit: unit.to_owned(),
            held: value <= limit,
        }
    }
}

/// The targets of issue 7 for one backend's figures.
pub fn targets(report: &BackendReport) -> Vec<Target> {
    let b = report.backend;
    let mut out = Vec::new();
    let (cycle_what, cycle_limit) = match b {
        Backend::Redis => ("cycle / raw floor (SET NX PX + compare-and-delete)", 1.1),
        Backend::Postgres => ("lease cycle / advisory-lock floor", 1.5),
        Backend::File => (
            "cycle / raw floor (open+flock+write+unlock+close per op)",
            2.5,
        ),
    };
    if let Some(ratio) = report.uncontended.ratio("ours_vs_floor") {
        out.push(Target::new(b, cycle_what, ratio, cycle_limit, "x"));
    }
    if let Some(ratio) = report.uncontended.ratio("permit_vs_exclusive") {
        out.push(Target::new(
            b,
            "a permit's cycle / the exclusive cycle",
            ratio,
            1.2,
            "x",
        ));
    }
    for c in [&report.semaphore, &report.readers_writer]
        .into_iter()
        .flatten()
    {
        let what = match c.mix {
            Mix::Semaphore => "semaphore of 3: holds over the permits",
            _ => "readers and a writer: holds beside the writer",
        };
        out.push(Target::new(b, what, c.over_admissions as f64, 0.0, ""));
    }
    let handoff_limit = if b == Backend::File { 200.0 } else { 1000.0 };
    let c = &report.contention;
    out.push(Target::new(
        b,
        "contended handoff mean",
        c.handoff.mean_us,
        handoff_limit,
        "us",
    ));
    out.push(Target::new(
        b,
        "fair turns: worst worker's p99 wait",
        c.worst_worker_p99_wait_us,
        20_000.0,
        "us",
    ));
    let w = &report.scale.waiters;
    out.push(Target::new(
        b,
        &format!(
            "connections for {} waiters on one handle (constant bound)",
            w.waiters
        ),
        w.connections_all_waiters as f64,
        w.connections_bound as f64,
        "conns",
    ));
    out.push(Target::new(
        b,
        "memory per held lease (Guard)",
        report.scale.leases.bytes_per_lease,
        2048.0,
        "bytes",
    ));
    out
}

/// The report as text tables.
pub fn human(report: &Report) -> String {
    let mut s = String::new();
    let m = &report.machine;
    let _ = writeln!(s, "lock-bench: {}", report.command);
    let _ = writeln!(
        s,
        "machine: {} cores, {}, Linux {}{}",
        m.cores,
        m.cpu,
        m.kernel,
        if report.quick {
            "  (--quick: smoke-test counts)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "CPU steal over the run: {}", steal(&report.steal));
    for b in &report.backends {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "== {} ==  (steal: {})",
            b.backend.as_str(),
            steal(&b.steal)
        );
        let u = &b.uncontended;
        let _ = writeln!(
            s,
            "uncontended acquire + release: {} rounds x {} cycles per side, interleaved, after {} warm-up",
            u.plan.rounds, u.plan.per_round, u.plan.warmup
        );
        let _ = writeln!(
            s,
            "  {:<62} {:>7} {:>9} {:>9} {:>10}",
            "side", "cycles", "p50 us", "p99 us", "cycles/s"
        );
        for side in &u.sides {
            let x = &side.summary;
            let _ = writeln!(
                s,
                "  {:<62} {:>7} {:>9.1} {:>9.1} {:>10.0}",
                side.label, x.cycles, x.p50_us, x.p99_us, x.cycles_per_s
            );
        }
        for r in &u.ratios {
            let _ = writeln!(
                s,
                "  ratio {:<20} {:>6.2}x  (median of per-round ratios: {} / {})",
                r.key, r.median_ratio, r.side, r.base
            );
        }
        if let Some(d) = &b.durability {
            let _ = writeln!(
                s,
                "durability (bare lease SQL): {} rounds x {} cycles per combination, interleaved",
                d.plan.rounds, d.plan.per_round
            );
            let _ = writeln!(
                s,
                "  {:<9} {:<19} {:>10} {:>9} {:>9} {:>10} {:>12}",
                "table",
                "synchronous_commit",
                "crash-safe",
                "p50 us",
                "p99 us",
                "cycles/s",
                "x default"
            );
            for c in &d.combinations {
                let x = &c.side.summary;
                let _ = writeln!(
                    s,
                    "  {:<9} {:<19} {:>10} {:>9.1} {:>9.1} {:>10.0} {:>11.2}x",
                    if c.logged { "logged" } else { "unlogged" },
                    if c.synchronous_commit { "on" } else { "off" },
                    if c.crash_safe { "yes" } else { "no" },
                    x.p50_us,
                    x.p99_us,
                    x.cycles_per_s,
                    c.speedup_vs_default
                );
            }
        }
        contention_lines(&mut s, &b.contention, "");
        for c in [&b.semaphore, &b.readers_writer].into_iter().flatten() {
            mix_lines(&mut s, c);
        }
        if let Some(c) = &b.cli_run {
            let _ = writeln!(
                s,
                "  lock run -- true, {} runs: p50 {:.2} ms, p99 {:.2} ms; peer flock FILE true: p50 {:.2} ms, p99 {:.2} ms; ratio {:.2}x (median of pairs)",
                c.lock_run.count,
                c.lock_run.p50_us / 1000.0,
                c.lock_run.p99_us / 1000.0,
                c.flock.p50_us / 1000.0,
                c.flock.p99_us / 1000.0,
                c.median_ratio
            );
        }
        if let Some(f) = &b.handoff_floor {
            let how = match b.backend {
                Backend::File => format!(
                    "{} processes passing a turn round a ring through one file (inotify + flock, no library)",
                    b.contention.workers
                ),
                _ => "the bare lease SQL handing a name between two connections, woken by its NOTIFY (no library, one process)".into(),
            };
            let _ = writeln!(
                s,
                "  handoff floor, {how}: mean {:.1} us, p50 {:.1} us, p99 {:.1} us",
                f.mean_us, f.p50_us, f.p99_us
            );
        }
        if let Some(c) = &b.contention_async {
            contention_lines(
                &mut s,
                c,
                ", with synchronous_commit=off (not crash-safe: what the durable commits cost)",
            );
        }
        let l = &b.scale.leases;
        let _ = writeln!(s, "scale: {} leases held at once, {}", l.held, l.held_as);
        let _ = writeln!(
            s,
            "  RSS {:.1} -> {:.1} MiB: {:.0} bytes per lease; {:.0} acquisitions/s, {:.0} releases/s",
            l.rss_before_bytes as f64 / 1048576.0,
            l.rss_held_bytes as f64 / 1048576.0,
            l.bytes_per_lease,
            l.acquire_per_s,
            l.release_per_s
        );
        let w = &b.scale.waiters;
        let _ = writeln!(
            s,
            "  {} waiters on one name: connections {} with 1 waiter, {} with {} (bound {}; {}{})",
            w.waiters,
            w.connections_one_waiter,
            w.connections_all_waiters,
            w.waiters,
            w.connections_bound,
            w.counted_as,
            if b.backend == Backend::File {
                format!(", {} inotify instance(s)", w.inotify_instances)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "  wake-up after a release: mean {:.1} us, p50 {:.1} us, p99 {:.1} us, max {:.1} us; all {} through in {:.1} ms",
            w.wake.mean_us,
            w.wake.p50_us,
            w.wake.p99_us,
            w.wake.max_us,
            w.waiters,
            w.all_through_ms
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "targets:");
    for t in &report.targets {
        let _ = writeln!(
            s,
            "  {:<9} {:<62} {:>10.2} {:<5} <= {:<8} {}",
            t.backend.as_str(),
            t.what,
            t.value,
            t.unit,
            t.limit,
            if t.held { "held" } else { "MISSED" }
        );
    }
    s
}

fn steal(steal: &Steal) -> String {
    format!(
        "{:.2}% ({} -> {} ticks)",
        steal.percent, steal.before_ticks, steal.after_ticks
    )
}

/// The lines of a semaphore or readers-and-writer contention run.
fn mix_lines(s: &mut String, c: &ContentionReport) {
    let what = match c.mix {
        Mix::Semaphore => format!(
            "{} processes x {} cycles on a semaphore of {SEMAPHORE_PERMITS}, holds of {MIX_HOLD_US} us",
            c.workers, c.cycles_per_worker
        ),
        _ => format!(
            "{} readers and 1 writer x {} cycles, holds of {MIX_HOLD_US} us",
            c.workers - 1,
            c.cycles_per_worker
        ),
    };
    let _ = writeln!(
        s,
        "{what}: {:.0} cycles/s; wait p50 {:.1} us, p99 {:.1} us; at most {} inside at once, {} over-admissions",
        c.cycles_per_s, c.wait.p50_us, c.wait.p99_us, c.most_inside, c.over_admissions
    );
    if let Some(w) = &c.writer_wait {
        let _ = writeln!(
            s,
            "  the writer's wait: p50 {:.1} us, p99 {:.1} us, longest {:.1} us (counter {})",
            w.p50_us,
            w.p99_us,
            w.max_us,
            if c.counter_ok { "exact" } else { "WRONG" }
        );
    }
}

/// The two lines of a contention section.
fn contention_lines(s: &mut String, c: &ContentionReport, note: &str) {
    let _ = writeln!(
        s,
        "contention: {} processes x {} cycles on one name guarding a counter (counter {}){note}",
        c.workers,
        c.cycles_per_worker,
        if c.counter_ok { "exact" } else { "WRONG" }
    );
    let _ = writeln!(
        s,
        "  {:.0} cycles/s, {} holder switches; handoff mean {:.1} us, p99 {:.1} us; wait p50 {:.1} us, p99 {:.1} us, longest {:.1} us; worst worker p99 wait {:.1} us",
        c.cycles_per_s,
        c.holder_switches,
        c.handoff.mean_us,
        c.handoff.p99_us,
        c.wait.p50_us,
        c.wait.p99_us,
        c.wait.max_us,
        c.worst_worker_p99_wait_us
    );
}

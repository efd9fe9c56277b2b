//! The table of a run, as Markdown or JSON, and the verdict.

use serde::Serialize;

use crate::backend::Backend;
use crate::check::Tally;
use crate::lane::LeaseKind;
use crate::profile::Profile;
use crate::scenario::Scenario;

/// One scenario on one backend.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The backend.
    pub backend: Backend,
    /// The scenario.
    pub scenario: Scenario,
    /// The lease kind of its lanes (`exclusive` for the CLI lanes).
    pub kind: LeaseKind,
    /// Why the lanes did not run, when the backend lacks what the kind needs.
    pub not_applicable: Option<&'static str>,
    /// What the checker counted.
    #[serde(flatten)]
    pub tally: Tally,
    /// How long it ran, in seconds.
    pub seconds: f64,
}

impl Row {
    /// Violations in this row.
    pub fn violations(&self) -> u64 {
        self.tally.violations(self.scenario.losses_are_violations())
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The profile.
    pub profile: Profile,
    /// Faults each backend needed in the library lanes.
    pub min_faults: u64,
    /// Faults each backend needed in the CLI lanes.
    pub min_cli_faults: u64,
    /// Every row.
    pub rows: Vec<Row>,
}

impl Report {
    /// Why the run fails, if it does: a violation, or too few faults for the profile.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.rows {
            if r.violations() > 0 {
                out.push(format!(
                    "{} / {} / {}: {} violations",
                    r.backend,
                    r.scenario,
                    r.kind,
                    r.violations()
                ));
            }
        }
        for b in Backend::ALL {
            for (cli, min, lanes) in [
                (false, self.min_faults, ""),
                (true, self.min_cli_faults, " in the CLI lanes"),
            ] {
                let rows: Vec<_> = self
                    .rows
                    .iter()
                    .filter(|r| r.backend == b && r.scenario.is_cli() == cli)
                    .collect();
                let faults: u64 = rows.iter().map(|r| r.tally.faults).sum();
                if !rows.is_empty() && faults < min {
                    out.push(format!(
                        "{b}: {faults} faults injected{lanes}, the {:?} profile needs {min}",
                        self.profile
                    ));
                }
            }
        }
        out
    }

    /// The Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| backend | scenario | lease kind | holds | faults | overlapping holds \
             | more than 3 at once | writer with another | starved writers | lost updates \
             | token regressions | repeated tokens \
             | stale writes accepted | stale writes refused | stale releases | losses not told \
             | stuck | early grants | spurious losses | panics | errors | slowest free after kill \
             | wall-clock steps |\n\
             |---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in self.rows.iter().filter(|r| !r.scenario.is_cli()) {
            if let Some(why) = r.not_applicable {
                s.push_str(&format!(
                    "| {} | {} | {} | not applicable ({why}) |{}\n",
                    r.backend,
                    r.scenario,
                    r.kind,
                    " |".repeat(19)
                ));
                continue;
            }
            let t = &r.tally;
            // A column for another kind of lane is a dash.
            let only = |kind: LeaseKind, n: u64| {
                if r.kind == kind || n > 0 {
                    n.to_string()
                } else {
                    "–".to_owned()
                }
            };
            let spurious = if r.scenario.losses_are_violations() {
                t.spurious_losses.to_string()
            } else {
                format!("({})", t.spurious_losses)
            };
            let free = if t.max_free_ms > 0 {
                format!("{} ms", t.max_free_ms)
            } else {
                "–".into()
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.backend,
                r.scenario,
                r.kind,
                t.holds,
                t.faults,
                only(LeaseKind::Exclusive, t.overlaps),
                only(LeaseKind::Semaphore, t.over_capacity),
                only(LeaseKind::Rw, t.writer_overlaps),
                only(LeaseKind::Rw, t.starved_writers),
                t.lost_updates,
                t.token_regressions,
                t.repeated_tokens,
                t.stale_writes_accepted,
                t.stale_writes_refused,
                t.stale_releases,
                t.not_told,
                t.stuck,
                t.early,
                spurious,
                t.panics,
                t.errors,
                free,
                t.clock_steps,
            ));
        }
        for b in Backend::ALL {
            let (faults, mid, outside) = self
                .rows
                .iter()
                .filter(|r| r.backend == b && !r.scenario.is_cli())
                .fold((0, 0, 0), |(f, m, o), r| {
                    (
                        f + r.tally.faults,
                        m + r.tally.paused_mid_operation,
                        o + r.tally.outside_deaths,
                    )
                });
            if faults > 0 {
                s.push_str(&format!("\n{b}: {faults} faults in all."));
            }
            if mid > 0 {
                s.push_str(&format!(
                    " {mid} more pauses stopped a holder inside an operation on its lock file \
                     (not counted: the lock waits for that process to run again)."
                ));
            }
            if outside > 0 {
                s.push_str(&format!(
                    " {outside} workers died of a signal the runner did not send: the run was \
                     disturbed from outside (counted as violations; run it again)."
                ));
            }
        }
        s.push('\n');
        s.push_str(&self.cli_markdown());
        s
    }

    /// The CLI lanes' table (empty when none ran).
    fn cli_markdown(&self) -> String {
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.scenario.is_cli()).collect();
        if rows.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "\n| backend | `lock run` fault | commands | faults | overlapping commands | stuck \
             | pause exits not 76 | panics | slowest retake after fault |\n\
             |---|---|--:|--:|--:|--:|--:|--:|--:|\n",
        );
        for r in &rows {
            let t = &r.tally;
            let free = if t.max_free_ms > 0 {
                format!("{} ms", t.max_free_ms)
            } else {
                "–".into()
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.backend,
                r.scenario,
                t.holds,
                t.faults,
                t.overlapping_commands,
                t.stuck,
                t.pause_exits_not_lost,
                t.panics,
                free,
            ));
        }
        for b in Backend::ALL {
            let faults: u64 = rows
                .iter()
                .filter(|r| r.backend == b)
                .map(|r| r.tally.faults)
                .sum();
            if faults > 0 {
                s.push_str(&format!("\n{b}: {faults} `lock run` faults in all."));
            }
        }
        s.push('\n');
        s
    }
}

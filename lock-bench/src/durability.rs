//! What durability costs on Postgres: the lease mode's acquire + release statements, bare on
//! one connection each, against a logged and an unlogged table, with `synchronous_commit` on
//! and off, interleaved round by round. The default of `lock-postgres` is the first: a logged
//! table with `synchronous_commit = on`, the only one of the four whose fencing tokens stay
//! monotonic across a crash.

use serde::Serialize;

use crate::Res;
use crate::floor_postgres::{Durability, LeaseSqlCycle};
use crate::rounds::{Plan, Side, interleave};
use crate::uncontended::SideReport;

/// One combination's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Combination {
    /// An ordinary table (`false`: `UNLOGGED`).
    pub logged: bool,
    /// `synchronous_commit` on.
    pub synchronous_commit: bool,
    /// Tokens stay monotonic across a server crash.
    pub crash_safe: bool,
    /// Its cycle times.
    #[serde(flatten)]
    pub side: SideReport,
    /// Median over rounds of the default's round mean over this one's: how many times faster
    /// this combination is than the default (1 for the default itself).
    pub speedup_vs_default: f64,
}

/// The durability section.
#[derive(Clone, Debug, Serialize)]
pub struct DurabilityReport {
    /// Cycles and rounds.
    pub plan: Plan,
    /// Logged/on (the default), logged/off, unlogged/on, unlogged/off.
    pub combinations: Vec<Combination>,
}

/// Measures the four combinations on the Postgres at `base`.
pub async fn run(base: &str, plan: Plan) -> Res<DurabilityReport> {
    let combos = [(true, true), (true, false), (false, true), (false, false)].map(
        |(logged, synchronous_commit)| Durability {
            logged,
            synchronous_commit,
        },
    );
    let mut sides: Vec<Box<dyn Side>> = Vec::new();
    for d in combos {
        let table = format!(
            "bench_durability_{}_{}",
            if d.logged { "logged" } else { "unlogged" },
            if d.synchronous_commit { "on" } else { "off" }
        );
        sides.push(Box::new(LeaseSqlCycle::connect(base, &table, d).await?));
    }
    let measured = interleave(&mut sides, plan).await?;
    let default = &measured[0];
    let combinations = combos
        .iter()
        .zip(&measured)
        .map(|(d, m)| {
            let ratio = default.ratio_to(m);
            Combination {
                logged: d.logged,
                synchronous_commit: d.synchronous_commit,
                crash_safe: d.logged && d.synchronous_commit,
                side: SideReport {
                    label: m.label.clone(),
                    summary: m.summary(),
                },
                speedup_vs_default: ratio,
            }
        })
        .collect();
    Ok(DurabilityReport { plan, combinations })
}

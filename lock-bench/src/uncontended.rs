//! Uncontended acquire + release, per backend, interleaved round by round with the raw floor
//! measured in the same run with the same client crate (see the `floor_*` modules), and our
//! `Guard` cycle beside the bare trait cycle.

use serde::Serialize;

use lock::{Kind, Permits};

use crate::Res;
use crate::floor_file::FlockCycle;
use crate::floor_postgres::{AdvisoryCycle, Durability, LeaseSqlCycle};
use crate::floor_redis::{BareScriptsCycle, SetNxCycle};
use crate::ours::{GuardCycle, TraitCycle};
use crate::rounds::{Measured, Plan, Side, interleave};
use crate::servers::{Backend, file_dir, lock_url};
use crate::stats::Summary;

/// One side's figures.
#[derive(Clone, Debug, Serialize)]
pub struct SideReport {
    /// What it is.
    pub label: String,
    /// Its cycle times.
    #[serde(flatten)]
    pub summary: Summary,
}

/// A comparison: the median over rounds of one side's round mean over another's.
#[derive(Clone, Debug, Serialize)]
pub struct RatioReport {
    /// A stable key: `ours_vs_floor`, `guard_vs_floor`, `ours_vs_bare_sql`,
    /// `bare_sql_vs_floor`, `ours_vs_bare_scripts`, `bare_scripts_vs_floor`, `tie_cost`
    /// (files: the guard's cycle with its lease tied to the process, over the same untied),
    /// `permit_vs_exclusive` (a permit of a semaphore of 3 over the exclusive trait cycle).
    pub key: String,
    /// The side compared.
    pub side: String,
    /// The side it is compared with.
    pub base: String,
    /// Median of per-round ratios.
    pub median_ratio: f64,
}

/// The uncontended section of one backend.
#[derive(Clone, Debug, Serialize)]
pub struct UncontendedReport {
    /// Cycles and rounds.
    pub plan: Plan,
    /// Every side, in the order each round ran them.
    pub sides: Vec<SideReport>,
    /// The comparisons.
    pub ratios: Vec<RatioReport>,
}

impl UncontendedReport {
    /// The ratio with key `key`.
    pub fn ratio(&self, key: &str) -> Option<f64> {
        self.ratios
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.median_ratio)
    }
}

/// Measures `backend` on the server at `base`.
pub async fn run(backend: Backend, base: &str, plan: Plan) -> Res<UncontendedReport> {
    let url = lock_url(backend, base, "uncontended");
    let ours = lock::connect(&url).await?;
    let mut sides: Vec<Box<dyn Side>> = Vec::new();
    match backend {
        Backend::Redis => {
            sides.push(Box::new(SetNxCycle::connect(base, "floor:key").await?));
            sides.push(Box::new(BareScriptsCycle::connect(base).await?));
        }
        Backend::Postgres => {
            sides.push(Box::new(AdvisoryCycle::connect(base, 42).await?));
            let durable = Durability {
                logged: true,
                synchronous_commit: true,
            };
            sides.push(Box::new(
                LeaseSqlCycle::connect(base, "bench_bare_sql", durable).await?,
            ));
        }
        Backend::File => {
            let dir = file_dir(base, "floor");
            std::fs::create_dir_all(&dir)?;
            sides.push(Box::new(FlockCycle::new(dir.join("floor.lock"))));
        }
    }
    let floors = sides.len();
    sides.push(Box::new(TraitCycle::new(ours.clone(), "uncontended")?));
    sides.push(Box::new(GuardCycle::new(
        ours.clone(),
        "uncontended-guard",
    )?));
    if backend == Backend::File {
        sides.push(Box::new(GuardCycle::untied(
            ours.clone(),
            "uncontended-untied",
        )?));
    }
    let permit_at = sides.len();
    let permits = ours.capabilities().permits;
    if permits {
        let three = Kind::permit(Permits::new(3)?);
        sides.push(Box::new(TraitCycle::with_kind(
            ours,
            "uncontended-permit",
            three,
        )?));
    }
    let measured = interleave(&mut sides, plan).await?;
    let floor = &measured[0];
    let trait_cycle = &measured[floors];
    let guard_cycle = &measured[floors + 1];
    let ratio = |key: &str, side: &Measured, base: &Measured| RatioReport {
        key: key.to_owned(),
        side: side.label.clone(),
        base: base.label.clone(),
        median_ratio: side.ratio_to(base),
    };
    let mut ratios = vec![
        ratio("ours_vs_floor", trait_cycle, floor),
        ratio("guard_vs_floor", guard_cycle, floor),
    ];
    match backend {
        Backend::Postgres => {
            let bare = &measured[1];
            ratios.push(ratio("ours_vs_bare_sql", trait_cycle, bare));
            ratios.push(ratio("bare_sql_vs_floor", bare, floor));
        }
        Backend::Redis => {
            let bare = &measured[1];
            ratios.push(ratio("ours_vs_bare_scripts", trait_cycle, bare));
            ratios.push(ratio("bare_scripts_vs_floor", bare, floor));
        }
        Backend::File => {
            let untied = &measured[floors + 2];
            ratios.push(ratio("tie_cost", guard_cycle, untied));
        }
    }
    if permits {
        let permit = &measured[permit_at];
        ratios.push(ratio("permit_vs_exclusive", permit, trait_cycle));
    }
    Ok(UncontendedReport {
        plan,
        sides: measured
            .iter()
            .map(|m| SideReport {
                label: m.label.clone(),
                summary: m.summary(),
            })
            .collect(),
        ratios,
    })
}

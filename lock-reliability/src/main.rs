//! `lock-reliability`: races worker processes on every backend while injecting faults, records
//! every operation, and checks the histories: no more holders at once than the lock allows
//! (one exclusive holder, 3 permits of a semaphore, readers but never a writer with anyone),
//! every token unique and rising in order of entry, no lost update, no stale write accepted,
//! no lock stuck after a crash, no writer starved by readers, every loss told. See
//! `docs/reliability.md`.
//!
//! ```text
//! lock-reliability [--profile short|long] [--backend B]… [--scenario S]… [--kind K]… [--json]
//! ```
//!
//! Exits 0 when every violation column is 0 (and, for `long`, every backend had 5,000 faults
//! in the library lanes and 1,000 in the CLI lanes), 1 otherwise. The workers are this binary
//! again (`worker`, `burn`, `command`: not for people); the CLI lanes run the `lock` binary
//! built beside it (`cargo build --release -p lock-cli -p lock-reliability`) or `$LOCK_BIN`.

mod backend;
mod check;
mod cli;
mod clock;
mod history;
mod lane;
mod profile;
mod report;
mod resource;
mod scenario;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use lock::{LockName, Ttl};

use crate::backend::{Backend, Env};
use crate::clock::ClockWatch;
use crate::lane::LeaseKind;
use crate::profile::Profile;
use crate::report::{Report, Row};
use crate::scenario::Scenario;

/// Fault injection across every backend, with a history checker.
#[derive(Debug, Parser)]
#[command(name = "lock-reliability", version)]
struct Args {
    /// `short` (about a minute, CI) or `long` (the release gate: 5,000 faults per backend).
    #[arg(long, value_enum, default_value = "short")]
    profile: Profile,
    /// Only these backends (default: all).
    #[arg(long, value_enum)]
    backend: Vec<Backend>,
    /// Only these scenarios (default: all that apply).
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
    /// Only lanes of these lease kinds (default: all; a kind the backend does not offer is
    /// reported as not applicable). By default the short profile runs `semaphore` and `rw` on
    /// the holder kill and pause only, the long one on every library scenario; kinds named
    /// here run on every scenario asked for, in either profile.
    #[arg(long, value_enum)]
    kind: Vec<LeaseKind>,
    /// Print the report as JSON instead of a Markdown table.
    #[arg(long)]
    json: bool,
    /// Keep every scenario's histories, resource log and worker output under this directory
    /// (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// A worker process (started by the runner).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        url: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        ttl_ms: u64,
        #[arg(long)]
        hold_max_ms: u64,
        #[arg(long, default_value_t = 2000)]
        wait_ms: u64,
        /// `x`, `s` or `p3` (see `history::kind_word`).
        #[arg(long, default_value = "x")]
        kind: String,
    },
    /// Keeps a core busy (started by the runner).
    #[command(hide = true)]
    Burn,
    /// The command a CLI lane's `lock run` guards (started by `lock`).
    #[command(hide = true)]
    Command {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        hold_ms: u64,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.role {
        Some(Role::Worker {
            url,
            name,
            dir,
            ttl_ms,
            hold_max_ms,
            wait_ms,
            kind,
        }) => {
            let plan = worker::Plan {
                url,
                name: LockName::new(name).expect("a lock name"),
                dir,
                ttl: Ttl::from_millis(ttl_ms).expect("a ttl"),
                hold_max: Duration::from_millis(hold_max_ms),
                wait: Duration::from_millis(wait_ms),
                kind: history::parse_kind_word(&kind).expect("a kind word"),
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(worker::run(plan));
            ExitCode::SUCCESS
        }
        Some(Role::Burn) => {
            worker::burn();
            ExitCode::SUCCESS
        }
        Some(Role::Command { dir, hold_ms }) => {
            cli::command::run(&dir, Duration::from_millis(hold_ms));
            ExitCode::SUCCESS
        }
        None => runner(args),
    }
}

fn runner(args: Args) -> ExitCode {
    let backends = if args.backend.is_empty() {
        Backend::ALL.to_vec()
    } else {
        args.backend
    };
    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario
    };
    let mut sizes = args.profile.sizes();
    // Kinds asked for by name run on every scenario asked for.
    sizes.every_kind_everywhere |= !args.kind.is_empty();
    let kinds = if args.kind.is_empty() {
        LeaseKind::ALL.to_vec()
    } else {
        args.kind
    };
    let temporary;
    let root = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("the --keep directory");
            dir.clone()
        }
        None => {
            temporary = tempfile::tempdir().expect("a temporary directory");
            temporary.path().to_owned()
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let clock = ClockWatch::start();
    let mut rows = Vec::new();
    for backend in backends {
        let mut env = Env::start(backend);
        let caps = runtime.block_on(scenario::connect(&env.url)).capabilities();
        for &scenario in scenarios.iter().filter(|s| s.applies_to(backend)) {
            for &kind in kinds.iter().filter(|k| scenario.runs_kind(**k, &sizes)) {
                if !kind.offered_by(&caps) {
                    eprintln!(
                        "{backend} / {scenario} / {kind}: not applicable ({})",
                        kind.lacking()
                    );
                    rows.push(Row {
                        backend,
                        scenario,
                        kind,
                        not_applicable: Some(kind.lacking()),
                        tally: Default::default(),
                        seconds: 0.0,
                    });
                    continue;
                }
                let started = Instant::now();
                let tally = runtime.block_on(scenario::run(
                    &mut env,
                    scenario,
                    kind,
                    caps.fair_line,
                    &sizes,
                    &root,
                    args.keep.is_some(),
                    &clock,
                ));
                let row = Row {
                    backend,
                    scenario,
                    kind,
                    not_applicable: None,
                    tally,
                    seconds: started.elapsed().as_secs_f64(),
                };
                eprintln!(
                    "{backend} / {scenario} / {kind}: {:.0} s, {}",
                    row.seconds,
                    serde_json::to_string(&row.tally).expect("a tally as JSON")
                );
                for d in &row.tally.early_details {
                    eprintln!("  early grant: {d}");
                }
                rows.push(row);
            }
        }
    }
    let report = Report {
        profile: args.profile,
        min_faults: sizes.min_faults,
        min_cli_faults: sizes.min_cli_faults,
        rows,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report as JSON")
        );
    } else {
        print!("{}", report.markdown());
    }
    let failures = report.failures();
    for f in &failures {
        eprintln!("FAIL: {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

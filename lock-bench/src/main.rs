//! `lock-bench`: every backend beside its raw floor, in one run (issue 7).
//!
//! For each backend it starts its own server (a private `redis-server` or Postgres on a free
//! loopback port, a temporary directory for files), then measures uncontended acquire +
//! release interleaved with the raw floor, Postgres's cost of durability, contention between
//! processes, and scale (many leases, many waiters), and prints each figure beside the
//! target it decides. This file reads the arguments and runs the sections in order; the
//! hidden subcommands `__contend` and `__scale` are this binary re-executed as a worker.

mod cli_run;
mod contention;
mod durability;
mod floor_file;
mod floor_postgres;
mod floor_redis;
mod floor_ring;
mod ours;
mod procfs;
mod report;
mod rounds;
mod scale;
mod servers;
mod stats;
mod together;
mod uncontended;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::contention::{Mix, SEMAPHORE_PERMITS, SEMAPHORE_WORKERS};
use crate::procfs::{CpuTicks, Machine, Steal};
use crate::report::{BackendReport, Report};
use crate::rounds::Plan;
use crate::servers::{Backend, Server, lock_url};

/// Every fallible step's result.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Measures each lock backend beside its raw floor: uncontended cycles, contention, scale.
#[derive(Debug, Parser)]
#[command(name = "lock-bench", version)]
struct Cli {
    /// Print one JSON object on stdout instead of the tables.
    #[arg(long, global = true)]
    json: bool,
    /// The backends to measure (repeat the flag for several); all three when not given.
    #[arg(long = "backend", value_enum)]
    backends: Vec<Backend>,
    /// Small counts, for a smoke test: the figures mean little.
    #[arg(long)]
    quick: bool,
    #[command(subcommand)]
    worker: Option<Worker>,
}

/// This binary re-executed as a worker process.
#[derive(Debug, Subcommand)]
enum Worker {
    /// A contention worker: cycles on one name, stamps on stdout.
    #[command(name = "__contend", hide = true)]
    Contend {
        #[arg(long)]
        url: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        cycles: usize,
        #[arg(long)]
        counter: PathBuf,
        /// `exclusive`, `shared` or `permit` (one of the semaphore's).
        #[arg(long, default_value = "exclusive")]
        kind: String,
        /// Microseconds each hold lasts (asleep).
        #[arg(long, default_value_t = 0)]
        hold_us: u64,
    },
    /// A ring worker of the files' handoff floor: turns on stdout.
    #[command(name = "__ring", hide = true)]
    Ring {
        #[arg(long)]
        file: PathBuf,
        #[arg(long)]
        index: usize,
        #[arg(long)]
        workers: usize,
        #[arg(long)]
        turns: usize,
    },
    /// The scale worker: many leases, many waiters, a report on stdout.
    #[command(name = "__scale", hide = true)]
    Scale {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long)]
        base: String,
        #[arg(long)]
        leases: usize,
        #[arg(long)]
        waiters: usize,
    },
}

/// How much of everything, full run or `--quick`.
struct Settings {
    fast_plan: Plan,
    postgres_plan: Plan,
    durability_plan: Plan,
    workers: usize,
    cycles_per_worker: usize,
    leases: usize,
    waiters: usize,
    /// Pairs of `lock run` and `flock(1)` runs.
    cli_runs: usize,
}

impl Settings {
    fn new(quick: bool) -> Self {
        if quick {
            let plan = Plan {
                warmup: 10,
                rounds: 3,
                per_round: 10,
            };
            Self {
                fast_plan: plan,
                postgres_plan: plan,
                durability_plan: plan,
                workers: 4,
                cycles_per_worker: 20,
                leases: 300,
                waiters: 20,
                cli_runs: 5,
            }
        } else {
            Self {
                fast_plan: Plan {
                    warmup: 300,
                    rounds: 20,
                    per_round: 300,
                },
                postgres_plan: Plan {
                    warmup: 100,
                    rounds: 15,
                    per_round: 100,
                },
                durability_plan: Plan {
                    warmup: 50,
                    rounds: 10,
                    per_round: 100,
                },
                workers: 4,
                cycles_per_worker: 500,
                leases: 10_000,
                waiters: 100,
                cli_runs: 100,
            }
        }
    }

    fn plan(&self, backend: Backend) -> Plan {
        match backend {
            Backend::Postgres => self.postgres_plan,
            Backend::File | Backend::Redis => self.fast_plan,
        }
    }
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.worker {
        Some(Worker::Contend {
            url,
            name,
            cycles,
            counter,
            kind,
            hold_us,
        }) => runtime().and_then(|rt| {
            rt.block_on(contention::worker(
                url, name, *cycles, counter, kind, *hold_us,
            ))
        }),
        Some(Worker::Ring {
            file,
            index,
            workers,
            turns,
        }) => floor_ring::worker(file, *index, *workers, *turns),
        Some(Worker::Scale {
            backend,
            base,
            leases,
            waiters,
        }) => {
            runtime().and_then(|rt| rt.block_on(scale::worker(*backend, base, *leases, *waiters)))
        }
        None => bench(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lock-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(cli: &Cli) -> Res<()> {
    let settings = Settings::new(cli.quick);
    let mut backends = cli.backends.clone();
    if backends.is_empty() {
        backends = vec![Backend::Redis, Backend::Postgres, Backend::File];
    }
    let mut seen = std::collections::HashSet::new();
    backends.retain(|b| seen.insert(*b));
    let runtime = runtime()?;
    let scratch = tempfile::Builder::new().prefix("lock-bench-").tempdir()?;
    let run_start = CpuTicks::read();
    let mut reports = Vec::new();
    for backend in backends {
        let name = backend.as_str();
        eprintln!("lock-bench: {name}: starting the server");
        let server = Server::start(backend);
        let base = server.base();
        let start = CpuTicks::read();
        eprintln!("lock-bench: {name}: uncontended cycles beside the raw floor");
        let uncontended =
            runtime.block_on(uncontended::run(backend, &base, settings.plan(backend)))?;
        let durability = if backend == Backend::Postgres {
            eprintln!("lock-bench: {name}: durability (logged/unlogged x synchronous_commit)");
            Some(runtime.block_on(durability::run(&base, settings.durability_plan))?)
        } else {
            None
        };
        eprintln!(
            "lock-bench: {name}: contention, {} processes x {} cycles",
            settings.workers, settings.cycles_per_worker
        );
        let contention_url = lock_url(backend, &base, "contention");
        let contention = contention::run(
            &contention_url,
            settings.workers,
            settings.cycles_per_worker,
            scratch.path(),
            Mix::Exclusive,
        )?;
        let capabilities = runtime
            .block_on(lock::connect(&contention_url))?
            .capabilities();
        let semaphore = if capabilities.permits {
            eprintln!(
                "lock-bench: {name}: {SEMAPHORE_WORKERS} processes on a semaphore of {SEMAPHORE_PERMITS}"
            );
            Some(contention::run(
                &contention_url,
                SEMAPHORE_WORKERS,
                settings.cycles_per_worker,
                scratch.path(),
                Mix::Semaphore,
            )?)
        } else {
            None
        };
        let readers_writer = if capabilities.shared {
            eprintln!(
                "lock-bench: {name}: {} readers and a writer",
                settings.workers - 1
            );
            Some(contention::run(
                &contention_url,
                settings.workers,
                settings.cycles_per_worker,
                scratch.path(),
                Mix::ReadersWriter,
            )?)
        } else {
            None
        };
        let handoff_floor = match backend {
            Backend::File => {
                eprintln!("lock-bench: {name}: the handoff floor, a turn passed round a ring");
                Some(floor_ring::run(
                    &scratch.path().join("ring"),
                    settings.workers,
                    settings.cycles_per_worker,
                )?)
            }
            Backend::Postgres => {
                eprintln!("lock-bench: {name}: the handoff floor, bare SQL and NOTIFY");
                Some(runtime.block_on(floor_postgres::handoff(
                    &base,
                    "bench_handoff_floor",
                    settings.cycles_per_worker,
                ))?)
            }
            Backend::Redis => None,
        };
        // The same contention without durable commits: what the flushes cost the handoff.
        let contention_async = if backend == Backend::Postgres {
            eprintln!("lock-bench: {name}: contention again, synchronous_commit=off");
            let url = lock_url(backend, &base, "contention_async")
                + "&options=-c%20synchronous_commit%3Doff";
            Some(contention::run(
                &url,
                settings.workers,
                settings.cycles_per_worker,
                scratch.path(),
                Mix::Exclusive,
            )?)
        } else {
            None
        };
        eprintln!(
            "lock-bench: {name}: scale, {} leases and {} waiters",
            settings.leases, settings.waiters
        );
        let scale = scale::run(backend, &base, settings.leases, settings.waiters)?;
        let cli_run = match (backend, cli_run::lock_binary()) {
            (Backend::File, Some(lock)) => {
                eprintln!("lock-bench: {name}: lock run beside flock(1)");
                Some(cli_run::run(
                    &lock,
                    &scratch.path().join("cli"),
                    settings.cli_runs,
                )?)
            }
            (Backend::File, None) => {
                eprintln!(
                    "lock-bench: {name}: no lock binary beside this one (cargo build --release -p lock-cli): lock run not measured"
                );
                None
            }
            _ => None,
        };
        let steal = Steal::between(start, CpuTicks::read());
        reports.push(BackendReport {
            backend,
            steal,
            uncontended,
            durability,
            contention,
            semaphore,
            readers_writer,
            contention_async,
            handoff_floor,
            scale,
            cli_run,
        });
        drop(server);
    }
    let targets = reports.iter().flat_map(report::targets).collect();
    let report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick: cli.quick,
        machine: Machine::read(),
        steal: Steal::between(run_start, CpuTicks::read()),
        backends: reports,
        targets,
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::human(&report));
    }
    Ok(())
}

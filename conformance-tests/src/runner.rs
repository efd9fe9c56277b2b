//! Running the cases: [`run_suites`], what [`suite!`](crate::suite) expands to, and
//! [`run_case`], one case on its own.
//!
//! Each case is a trial of a `libtest-mimic` harness, so a test binary of the suite reads its
//! arguments (filters, `--exact`, `--list`, `--ignored`) and prints its results as `cargo test`
//! does. A case the backend's capabilities rule out is reported as ignored, with the reason.

use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::cases::{CASES, Case};
use crate::cross_process::Worker;
use crate::suite::{Setup, Suite};

/// Runs every case against each of `suites` (a trial prefix such as `"session::"`, or `""`,
/// and its setup) as the whole of a test binary's `main`, and says how it went.
///
/// Run as a worker process of the cross-process case, it does that worker's share instead.
pub fn run_suites(suites: Vec<(&'static str, Arc<dyn Setup>)>) -> ExitCode {
    if let Some(worker) = Worker::from_env() {
        let setup = suites
            .iter()
            .find(|(prefix, _)| *prefix == worker.suite())
            .map(|(_, setup)| setup.clone())
            .expect("a worker of a suite this binary runs");
        runtime().block_on(worker.run(&*setup));
        return ExitCode::SUCCESS;
    }
    let args = Arguments::from_args();
    let trials = suites
        .iter()
        .flat_map(|(prefix, setup)| {
            CASES.iter().map(move |case| {
                let (prefix, setup, case) = (*prefix, setup.clone(), *case);
                Trial::ignorable_test(format!("{prefix}{}", case.name), move || {
                    run_trial(setup, case, prefix)
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// Runs `case` against `setup` on a fresh runtime, panicking where it fails; returns `false`
/// without running it when the backend lacks a capability it needs.
pub fn run_case(setup: Arc<dyn Setup>, case: &Case) -> bool {
    match run_trial(setup, *case, "") {
        Ok(Completion::Completed) => true,
        Ok(Completion::Ignored { .. }) => false,
        Err(failed) => panic!("{}", failed.message().unwrap_or("failed")),
    }
}

fn run_trial(
    setup: Arc<dyn Setup>,
    case: Case,
    prefix: &'static str,
) -> Result<Completion, Failed> {
    runtime().block_on(async move {
        let location = setup.location();
        let capabilities = setup.connect(&location).await.capabilities();
        if let Some(need) = case.missing(capabilities) {
            return Ok(Completion::ignored_with(need.reason()));
        }
        let suite = Suite::new(setup, location, capabilities, case.name, prefix);
        (case.body)(&suite).await;
        Ok(Completion::Completed)
    })
}

/// A fresh multi-threaded runtime for one case.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

//! `lock`: keep a command from running twice, on one machine or many. See `lock --help`.

/// `eprintln!` that carries on when stderr is a closed pipe instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod report;
mod run;
mod signals;
mod supervisor;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use clap::error::ErrorKind;
use lock::{Acquisition, Claim, Lock, LockState, ReleaseOutcome, RenewOutcome, Wait};

use crate::args::{Cli, Command};
use crate::report::{EXIT_USAGE, Outcome, Report};
use crate::supervisor::Supervisor;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) => {
            if std::env::args_os().any(|a| a == "--json") {
                let line = first_line(&e);
                let message = match e.kind().as_str() {
                    // Some kinds (invalid UTF-8, say) have no more to say than their name.
                    Some(kind) if kind != line => format!("{kind}: {line}"),
                    _ => line,
                };
                Report::failure(None, message, EXIT_USAGE).print(true);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Completions { shell } => return print_completions(shell),
        Command::Man { subcommand } => return print_man(subcommand.as_deref()),
        _ => {}
    }
    // Before any thread exists: the supervisor is forked from this process as it is now.
    let supervisor = match &cli.command {
        Command::Run(args) => match Supervisor::fork(args.lock.name.as_str(), &args.command) {
            Ok(supervisor) => Some(supervisor),
            Err(e) => {
                let message = format!("cannot start the command's supervisor process: {e}");
                let report = Report::failure(Some(args.lock.name.to_string()), message, 1);
                report.print(cli.json);
                return ExitCode::from(report.exit_code());
            }
        },
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(execute(cli.backend.as_deref(), cli.command, supervisor));
    report.print(cli.json);
    // Do not wait for background tasks (a renewal in flight, say).
    runtime.shutdown_background();
    ExitCode::from(report.exit_code())
}

/// `lock completions SHELL`: the completion script, generated from the clap definitions.
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "lock", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// `lock man [SUBCOMMAND]`: the manual page (roff) of `lock` or of one of its subcommands
/// (`lock-run(1)`, …), generated from the clap definitions. An unknown subcommand is bad input.
fn print_man(subcommand: Option<&str>) -> ExitCode {
    let lock = <Cli as clap::CommandFactory>::command();
    let page = match subcommand {
        None => lock,
        Some(name) => match lock.find_subcommand(name) {
            // Named as its page is: lock-run(1). (clap takes only a `'static` name; the
            // process prints one page and ends.)
            Some(sub) => sub
                .clone()
                .name(&*Box::leak(format!("lock-{name}").into_boxed_str())),
            None => {
                let known: Vec<_> = lock.get_subcommands().map(|c| c.get_name()).collect();
                say!(
                    "error: no manual page for '{name}'; the subcommands are: {}",
                    known.join(", ")
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
    };
    match clap_mangen::Man::new(page).render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`lock man | head`): nothing more to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            say!("lock: cannot print the manual page: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The error's first paragraph on one line: what is wrong, with the lines that continue it
/// (the missing arguments, say), without the usage and tips that follow.
fn first_line(e: &clap::Error) -> String {
    e.to_string()
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned()
}

async fn execute(
    backend: Option<&str>,
    command: Command,
    supervisor: Option<Supervisor>,
) -> Report {
    let connected = match backend {
        Some(url) => lock::connect(url).await,
        None => lock::connect_default().await,
    };
    let lock: Arc<dyn Lock> = match connected {
        Ok(lock) => lock,
        Err(e) => return Report::error(command.name(), &e),
    };
    match command {
        Command::Completions { .. } | Command::Man { .. } => unreachable!("printed in main"),
        Command::Run(args) => {
            let supervisor = supervisor.expect("forked for run");
            run::run(lock, args, supervisor).await
        }
        Command::Acquire(a) => {
            let name = &a.lock.name;
            let wait = a.wait.map_or(Wait::No, Wait::For);
            let claim = Claim::new(name, &a.owner, a.ttl).with_kind(a.kind.kind());
            let acquisition = lock::acquire(&*lock, claim, wait).await;
            match acquisition.map(Acquisition::into_result) {
                Ok(Ok(lease)) => Report::new(name, Outcome::Acquired).lease(&lease),
                Ok(Err(not)) if not.timed_out => {
                    Report::new(name, Outcome::Timeout).holder(&not.holder)
                }
                Ok(Err(not)) => Report::new(name, Outcome::Held).holder(&not.holder),
                Err(e) => Report::error(Some(name), &e),
            }
        }
        Command::Renew(a) => {
            let name = &a.lock.name;
            match lock.renew(name, &a.owner, a.ttl).await {
                Ok(RenewOutcome::Renewed(lease)) => {
                    Report::new(name, Outcome::Renewed).lease(&lease)
                }
                Ok(_) => Report::new(name, Outcome::Lost),
                Err(e) => Report::error(Some(name), &e),
            }
        }
        Command::Release(a) => {
            let name = &a.lock.name;
            let result = match &a.owner {
                Some(owner) => lock.release(name, owner).await,
                None => lock.force_release(name).await,
            };
            match result {
                Ok(ReleaseOutcome::Released) => Report::new(name, Outcome::Released),
                Ok(ReleaseOutcome::NotOwner) => Report::new(name, Outcome::NotOwner),
                Ok(_) => Report::new(name, Outcome::NotLocked),
                Err(e) => Report::error(Some(name), &e),
            }
        }
        Command::Status(a) => match lock.inspect(&a.name).await {
            Ok(LockState::Locked(h)) => Report::new(&a.name, Outcome::Locked).holders(&h),
            Ok(_) => Report::new(&a.name, Outcome::Open),
            Err(e) => Report::error(Some(&a.name), &e),
        },
    }
}

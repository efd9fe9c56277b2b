//! `lock run`: take the lock, run the command while renewing, stop it if the lock is lost.
//!
//! The command runs under a supervisor process (see `supervisor.rs`) that stops it when `lock`
//! goes away or the lease's deadline comes without a renewal.

use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lock::{
    AcquireOptions, Acquisition, Guard, Holder, HolderTie, Lock, LockName, ReleaseOutcome, Ttl,
    Wait,
};

use crate::args::RunArgs;
use crate::report::{EXIT_LOST, Outcome, Report};
use crate::signals::{self, Signals};
use crate::supervisor::{FromSupervisor, Supervisor, Why, margin, max_grace};

/// The grace between TERM and KILL when `--kill-after` is not given (cut to a third of the
/// ttl, silently, when the ttl is shorter than 15 s).
const DEFAULT_KILL_AFTER: Duration = Duration::from_secs(5);

pub async fn run(lock: Arc<dyn Lock>, args: RunArgs, supervisor: Supervisor) -> Report {
    let backend = lock.clone();
    // Before the first try: from the moment the lock can be held, a signal must find us ready.
    let mut signals = Signals::install();
    let grace = grace(args.kill_after, args.ttl);
    let name = args.lock.name.clone();
    let wait = match (args.no_wait, args.wait) {
        (true, _) => Wait::No,
        (false, Some(d)) => Wait::For(d),
        (false, None) => Wait::Forever,
    };
    // Whom the wait waits for, as last said: for the report of a wait cut short.
    let waiting_for = Arc::new(Mutex::new(None::<Holder>));
    let options = AcquireOptions::new()
        .ttl(args.ttl)
        .wait(wait)
        .kind(args.kind.kind());
    let options = options.on_waiting({
        let (name, waiting_for) = (name.clone(), waiting_for.clone());
        move |holder| {
            say_waiting(&name, holder, wait);
            *waiting_for.lock().unwrap_or_else(|e| e.into_inner()) = holder.cloned();
        }
    });
    let mut acquiring = Guard::acquire(lock, name.clone(), options);
    let acquisition = tokio::select! {
        acquisition = &mut acquiring => acquisition,
        signal = signals.recv() => {
            // Gives up a grant whose answer was lost and the place in line.
            acquiring.cancel().await;
            say!("lock: {signal} received while waiting for {name}; command not started");
            let holder = waiting_for.lock().unwrap_or_else(|e| e.into_inner()).take();
            let report = Report::new(&name, Outcome::Held);
            let report = match &holder {
                Some(holder) => report.holder(holder),
                None => report,
            };
            return report.run_ended(signals::exit_code(signal));
        }
    };
    let guard = match acquisition.map(Acquisition::into_result) {
        Ok(Ok(guard)) => guard,
        Ok(Err(not)) => {
            let outcome = if not.timed_out {
                Outcome::Timeout
            } else {
                Outcome::Held
            };
            return conflict(&name, outcome, &not.holder, args.conflict_exit_code);
        }
        Err(e) => return Report::error(Some(&name), &e),
    };
    if let Some(signal) = signals.received() {
        say!("lock: {signal} received as {name} was taken; command not started");
        let lease = guard.lease().clone();
        let _ = guard.release().await;
        return Report::new(&name, Outcome::Released)
            .lease(&lease)
            .run_ended(signals::exit_code(signal));
    }
    // The guard's tie (files) is handed down to the command. A backend whose lease already ends
    // with its connection (Postgres session mode) gives a tie that keeps that connection open:
    // the supervisor alone keeps it, so that the lease outlives a killed `lock` exactly until
    // the command's group is gone.
    let kept = match guard.tie() {
        Some(_) => None,
        None => match backend.tie(&name, &guard.lease().owner).await {
            Ok(tie) => tie,
            Err(e) => {
                let report = Report::error(Some(&name), &e);
                let _ = guard.release().await;
                return report;
            }
        },
    };
    supervise(guard, kept, &name, grace, signals, supervisor).await
}

/// The grace between TERM and KILL: `--kill-after`, cut to a third of the ttl so that KILL
/// lands before the lease can lapse (saying so when the cut one was given).
fn grace(kill_after: Option<Duration>, ttl: Ttl) -> Duration {
    let most = max_grace(ttl);
    match kill_after {
        Some(given) if given > most => {
            say!(
                "lock: --kill-after {} is cut to {}, a third of the ttl, so that the command is \
                 stopped before its lease can lapse",
                humantime::format_duration(given),
                humantime::format_duration(most)
            );
            most
        }
        Some(given) => given,
        None => DEFAULT_KILL_AFTER.min(most),
    }
}

fn conflict(name: &LockName, outcome: Outcome, holder: &Holder, code: u8) -> Report {
    say!(
        "lock: {name} is held by {} (fencing token {}); command not started",
        holder.owner,
        holder.token
    );
    Report::new(name, outcome).holder(holder).run_ended(code)
}

fn say_waiting(name: &LockName, holder: Option<&Holder>, wait: Wait) {
    let how_long = match wait {
        Wait::For(d) => format!("waiting up to {}", humantime::format_duration(d)),
        _ => "waiting".to_owned(),
    };
    let Some(holder) = holder else {
        say!("lock: {name} is open, but others wait ahead in line; {how_long}");
        return;
    };
    let left = holder.expires_in.map_or_else(
        || "until it is released".to_owned(),
        |d| {
            format!(
                "its lease ends in {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
            )
        },
    );
    say!(
        "lock: {name} is held by {} ({left}); {how_long}",
        holder.owner
    );
}

/// Runs the command under the guard, through its supervisor, and says how it ended.
async fn supervise(
    guard: Guard,
    kept: Option<HolderTie>,
    name: &LockName,
    grace: Duration,
    mut signals: Signals,
    supervisor: Supervisor,
) -> Report {
    let lease = guard.lease().clone();
    let mut validity = guard.valid_until_changes();
    let valid_until = *validity.borrow_and_update();
    let (tie, hand_down) = match (guard.tie(), &kept) {
        (Some(tie), _) => (Some(tie.as_fd()), true),
        (None, Some(kept)) => (Some(kept.as_fd()), false),
        (None, None) => (None, false),
    };
    let started = supervisor
        .start(
            lease.token.get(),
            tie,
            hand_down,
            valid_until,
            margin(lease.ttl),
            grace,
        )
        .await;
    let mut running = match started {
        Ok(running) => running,
        Err(failed) => {
            let _ = guard.release().await;
            let (code, message) = match failed {
                Some(FromSupervisor::Failed { code, message }) => (code, message),
                _ => (
                    1,
                    "the command's supervisor process ended before it started".into(),
                ),
            };
            return Report::failure(Some(name.to_string()), message, code).run_ended(code);
        }
    };
    let mut lost = None;
    let mut renewing = true;
    let ended = loop {
        tokio::select! {
            message = running.next() => match message {
                Some(FromSupervisor::Exited { code, why }) => break Some((code, why)),
                Some(_) => {}
                None => break None,
            },
            reason = guard.lost(), if lost.is_none() => {
                say!("lock: lost {name}: {reason}; stopping the command (TERM, then KILL after {})",
                    humantime::format_duration(grace));
                running.stop().await;
                lost = Some(reason);
            }
            changed = validity.changed(), if renewing => match changed {
                Ok(()) => {
                    let valid_until = *validity.borrow_and_update();
                    running.renewed(valid_until).await;
                }
                Err(_) => renewing = false,
            },
            signal = signals.recv() => running.signal(signal).await,
        }
    };
    let Some((exit, why)) = ended else {
        say!("lock: the command's supervisor process ended unexpectedly; stopping the command");
        running.stop_without_supervisor(grace).await;
        let _ = guard.release().await;
        let message = "the command's supervisor process ended unexpectedly".to_owned();
        return Report::failure(Some(name.to_string()), message, 1).run_ended(1);
    };
    if why == Why::Deadline && lost.is_none() {
        // The supervisor stopped it: no renewal got through in time (this process stopped, or
        // the backend unreachable). The lease may still be ours, but the command is gone.
        let _ = guard.release().await;
        return Report::new(name, Outcome::Lost)
            .lease(&lease)
            .run_ended(EXIT_LOST);
    }
    if lost.is_some() {
        return Report::new(name, Outcome::Lost)
            .lease(&lease)
            .run_ended(EXIT_LOST);
    }
    let released = guard.release().await;
    let report = Report::new(name, Outcome::Released).lease(&lease);
    match released {
        Ok(ReleaseOutcome::Released) => report.run_ended(exit),
        Ok(_) => {
            say!("lock: {name} was lost just as the command ended");
            Report::new(name, Outcome::Lost)
                .lease(&lease)
                .run_ended(EXIT_LOST)
        }
        Err(e) => {
            say!("lock: could not release {name} (it lapses after its ttl): {e}");
            report.run_ended(exit)
        }
    }
}

//! `lock run`: take the lock, run the command while renewing, stop it if the lock is lost.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use lock::{
    AcquireOptions, Acquisition, Guard, Holder, Lock, LockName, OwnerId, ReleaseOutcome, Wait,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::args::RunArgs;
use crate::report::{EXIT_LOST, Outcome, Report};
use crate::signals::{self, Signals};

pub async fn run(lock: Arc<dyn Lock>, args: RunArgs) -> Report {
    // Before the first try: from the moment the lock can be held, a signal must find us ready.
    let mut signals = Signals::install();
    let name = args.name.name.clone();
    let wait = match (args.no_wait, args.wait) {
        (true, _) => Wait::No,
        (false, Some(d)) => Wait::For(d),
        (false, None) => Wait::Forever,
    };
    let owner = OwnerId::random();
    let options = AcquireOptions::new().ttl(args.ttl).owner(owner.clone());
    // One try first, so that a waiter can say whom it waits for.
    let guard = match Guard::acquire(lock.clone(), name.clone(), options.clone().wait(Wait::No))
        .await
    {
        Ok(Acquisition::Acquired(guard)) => guard,
        Ok(Acquisition::Held(holder) | Acquisition::TimedOut(holder)) if wait == Wait::No => {
            return conflict(&name, Outcome::Held, &holder, args.conflict_exit_code);
        }
        Ok(Acquisition::Held(holder) | Acquisition::TimedOut(holder)) => {
            say_waiting(&name, &holder, wait);
            let acquisition = tokio::select! {
                acquisition = Guard::acquire(lock.clone(), name.clone(), options.wait(wait)) => {
                    acquisition
                }
                signal = signals.recv() => {
                    return interrupted_wait(&*lock, &name, &owner, &holder, signal).await;
                }
            };
            match acquisition {
                Ok(Acquisition::Acquired(guard)) => guard,
                Ok(Acquisition::Held(h) | Acquisition::TimedOut(h)) => {
                    return conflict(&name, Outcome::Timeout, &h, args.conflict_exit_code);
                }
                Ok(_) => unreachable!("no other acquisition outcome"),
                Err(e) => return Report::error(Some(&name), &e),
            }
        }
        Ok(_) => unreachable!("no other acquisition outcome"),
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
    supervise(guard, &name, &args, signals).await
}

/// A signal came while waiting: stop waiting, leave nothing behind, do not start the command.
///
/// The wait was dropped mid-way, so a try may have been granted without its answer read, and
/// a place in line may be kept: both are given up here, best effort (else they lapse, after
/// the ttl and the line's patience).
async fn interrupted_wait(
    lock: &dyn Lock,
    name: &LockName,
    owner: &OwnerId,
    holder: &Holder,
    signal: Signal,
) -> Report {
    say!("lock: {signal} received while waiting for {name}; command not started");
    let _ = lock.release(name, owner).await;
    let _ = lock.leave_line(name, owner).await;
    Report::new(name, Outcome::Held)
        .holder(holder)
        .run_ended(signals::exit_code(signal))
}

fn conflict(name: &LockName, outcome: Outcome, holder: &Holder, code: u8) -> Report {
    say!(
        "lock: {name} is held by {} (fencing token {}); command not started",
        holder.owner,
        holder.token
    );
    Report::new(name, outcome).holder(holder).run_ended(code)
}

fn say_waiting(name: &LockName, holder: &Holder, wait: Wait) {
    let left = holder.expires_in.map_or_else(
        || "until it is released".to_owned(),
        |d| {
            format!(
                "its lease ends in {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
            )
        },
    );
    let how_long = match wait {
        Wait::For(d) => format!("waiting up to {}", humantime::format_duration(d)),
        _ => "waiting".to_owned(),
    };
    say!(
        "lock: {name} is held by {} ({left}); {how_long}",
        holder.owner
    );
}

/// Runs the command under the guard and says how it ended.
async fn supervise(guard: Guard, name: &LockName, args: &RunArgs, mut signals: Signals) -> Report {
    let lease = guard.lease().clone();
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("LOCK_NAME", name.as_str())
        .env("LOCK_FENCING_TOKEN", lease.token.to_string())
        // Its own process group, so that stopping it stops what it started too.
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = guard.release().await;
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let message = format!("cannot start {:?}: {e}", args.command[0]);
            return Report::failure(Some(name.to_string()), message, code).run_ended(code);
        }
    };
    let group = Pid::from_raw(child.id().expect("a running child has a pid") as i32);
    let mut lost = None;
    let kill_at = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(kill_at);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            reason = guard.lost(), if lost.is_none() => {
                say!("lock: lost {name}: {reason}; stopping the command (TERM, then KILL after {})",
                    humantime::format_duration(args.kill_after));
                let _ = killpg(group, Signal::SIGTERM);
                kill_at.as_mut().reset(tokio::time::Instant::now() + args.kill_after);
                lost = Some(reason);
            }
            () = &mut kill_at, if lost.is_some() => {
                let _ = killpg(group, Signal::SIGKILL);
                kill_at.as_mut().reset(tokio::time::Instant::now() + Duration::MAX / 4);
            }
            signal = signals.recv() => { let _ = killpg(group, signal); }
        }
    };
    let exit = match status {
        Ok(status) => exit_code(status),
        Err(e) => {
            say!("lock: cannot wait for the command: {e}");
            1
        }
    };
    let released = guard.release().await;
    let report = Report::new(name, Outcome::Released).lease(&lease);
    match (lost, released) {
        (None, Ok(ReleaseOutcome::Released)) => report.run_ended(exit),
        (Some(_), _) => Report::new(name, Outcome::Lost)
            .lease(&lease)
            .run_ended(EXIT_LOST),
        (None, Ok(_)) => {
            say!("lock: {name} was lost just as the command ended");
            Report::new(name, Outcome::Lost)
                .lease(&lease)
                .run_ended(EXIT_LOST)
        }
        (None, Err(e)) => {
            say!("lock: could not release {name} (it lapses after its ttl): {e}");
            report.run_ended(exit)
        }
    }
}

/// The command's exit code, or 128 + the signal that killed it, as shells report it.
fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        (None, None) => 1,
    }
}

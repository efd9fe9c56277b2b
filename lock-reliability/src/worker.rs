//! A worker process: acquire → read the resource → hold a while → write it back plus one →
//! release, over and over, writing every step to its history, until the lane's stop file
//! appears. A reader (a shared lease) only reads the resource; a semaphore's permit holder
//! does not touch it (three holders at once may: the counter is for one writer at a time).
//!
//! The worker writes the resource even when its guard has said lost: it plays a client whose
//! write was already on its way when it was paused, which is exactly the write fencing must
//! refuse. Before releasing a hold that is past its `valid_until`, it gives the guard one
//! second to say lost, and records `not_told` if it does not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lock::{AcquireOptions, Acquisition, Guard, Kind, LockName, LossReason, OwnerId, Ttl, Wait};
use nix::unistd::getppid;
use tokio::time::{Instant, sleep, timeout};

use crate::clock::{Rng, instant_ns};
use crate::history::{Event, HoldId, Writer};
use crate::resource::Resource;

/// What a worker does, from its command line.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The backend.
    pub url: String,
    /// The lane's lock.
    pub name: LockName,
    /// The lane's directory: the resource, the stop file, the histories.
    pub dir: PathBuf,
    /// The lease's ttl.
    pub ttl: Ttl,
    /// Holds last 0 to this long.
    pub hold_max: Duration,
    /// How long an acquisition waits before giving up.
    pub wait: Duration,
    /// The kind of lease every acquisition claims.
    pub kind: Kind,
}

/// The owner id of a hold, from which the parent learns which process holds a lock.
pub fn owner_of(hold: HoldId) -> OwnerId {
    OwnerId::new(format!("w{}-{}", hold.pid, hold.n)).expect("a valid owner id")
}

/// The worker process whose hold an owner id names (see [`owner_of`]).
pub fn pid_of(owner: &OwnerId) -> Option<u32> {
    owner
        .as_str()
        .strip_prefix('w')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// The stop file of a lane.
pub fn stop_file(dir: &Path) -> PathBuf {
    dir.join("stop")
}

/// The history of worker `pid` in a lane.
pub fn history_file(dir: &Path, pid: u32) -> PathBuf {
    dir.join(format!("history-{pid}"))
}

/// Runs the worker until the stop file appears.
pub async fn run(plan: Plan) {
    let pid = std::process::id();
    let path = history_file(&plan.dir, pid);
    if path.exists() {
        return; // an earlier worker of the lane had this pid: the runner starts another
    }
    let mut history = Writer::open(&path).expect("open the history");
    let resource = Resource::new(&plan.dir);
    let mut rng = Rng::from_entropy();
    let lock = loop {
        match lock::connect(&plan.url).await {
            Ok(lock) => break lock,
            // The server may be down for a restart: that is the scenario, keep trying.
            Err(_) => sleep(Duration::from_millis(50)).await,
        }
    };
    let mut n = 0;
    let parent = getppid();
    // The stop file ends a run; a runner that died without writing it (killed) ends it too.
    // (Not PR_SET_PDEATHSIG: that fires when the spawning *thread* ends, and the runner
    // spawns workers from tokio's threads.)
    while !stop_file(&plan.dir).exists() && getppid() == parent {
        n += 1;
        let hold = HoldId { pid, n };
        let options = AcquireOptions::new()
            .ttl(plan.ttl)
            .wait(Wait::For(plan.wait))
            .kind(plan.kind)
            .owner(owner_of(hold));
        history.log(hold, Event::AcquireInvoked { kind: plan.kind });
        match Guard::acquire(lock.clone(), plan.name.clone(), options).await {
            Ok(Acquisition::Acquired(guard)) => {
                let hold_for = Duration::from_micros(rng.below(plan.hold_max.as_micros() as u64));
                held(&mut history, &resource, hold, plan.kind, guard, hold_for).await;
            }
            Ok(_) => history.log(hold, Event::NotAcquired),
            Err(_) => {
                history.log(hold, Event::AcquireFailed);
                sleep(Duration::from_millis(20 + rng.below(30))).await;
            }
        }
        sleep(Duration::from_micros(rng.below(3_000))).await;
    }
    drop(lock);
}

async fn held(
    history: &mut Writer,
    resource: &Resource,
    hold: HoldId,
    kind: Kind,
    guard: Guard,
    hold_for: Duration,
) {
    let token = guard.token().get();
    let mut valid_until = guard.valid_until();
    history.log(
        hold,
        Event::Acquired {
            token,
            valid_until: instant_ns(valid_until),
        },
    );
    let read = match kind.normalized() {
        Kind::Exclusive | Kind::Shared => resource.read(hold, token),
        _ => None,
    };
    let end = Instant::now() + hold_for;
    let mut told = false;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let step = (end - now).min(Duration::from_millis(5));
        tokio::select! {
            () = sleep(step) => {}
            reason = guard.lost(), if !told => {
                told = true;
                history.log(hold, Event::Lost { reason: reason_name(&reason).into() });
            }
        }
        if guard.valid_until() != valid_until {
            valid_until = guard.valid_until();
            history.log(
                hold,
                Event::Renewed {
                    valid_until: instant_ns(valid_until),
                },
            );
        }
    }
    if let Some(value) = read.filter(|_| kind.normalized() == Kind::Exclusive) {
        resource.write(hold, token, value + 1);
    }
    if !told && Instant::now() >= guard.valid_until() {
        match timeout(Duration::from_secs(1), guard.lost()).await {
            Ok(reason) => history.log(
                hold,
                Event::Lost {
                    reason: reason_name(&reason).into(),
                },
            ),
            Err(_) => history.log(hold, Event::NotTold),
        }
    }
    history.log(
        hold,
        Event::ReleaseInvoked {
            valid_until: instant_ns(guard.valid_until()),
        },
    );
    let outcome = match guard.release().await {
        Ok(lock::ReleaseOutcome::Released) => "released",
        Ok(lock::ReleaseOutcome::NotOwner) => "not_owner",
        Ok(lock::ReleaseOutcome::NotLocked) => "not_locked",
        Ok(_) => "other",
        Err(_) => "error",
    };
    history.log(
        hold,
        Event::Released {
            outcome: outcome.into(),
        },
    );
}

fn reason_name(reason: &LossReason) -> &'static str {
    match reason {
        LossReason::Refused => "refused",
        _ => "unreachable",
    }
}

/// Keeps one core busy until killed, or until the runner is gone: the CPU-stress scenario
/// runs two of these.
pub fn burn() {
    let parent = getppid();
    let mut x: u64 = 1;
    while getppid() == parent {
        for _ in 0..10_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

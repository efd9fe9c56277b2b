//! Scale, in a fresh process of its own (this binary again, as the hidden `__scale` worker), so
//! that its memory figures start from a clean heap:
//!
//! - **many leases**: 10,000 names held at once, each by a `Guard` (what users hold: a
//!   renewer task per lease; ttl 1 h, so no renewal falls inside the measurement), taken by
//!   32 tasks on one handle. Memory per lease is the growth of this process's resident set
//!   (`/proc/self/statm`) from before the first to after the last, divided by the count;
//! - **many waiters**: 100 tasks on one handle wait for one name. Connections are counted
//!   where they end: the server (`CLIENT LIST`, `pg_stat_activity`), or for files this
//!   process's open descriptors and inotify instances. Then the holder releases and each
//!   waiter, once it has the lock, releases it at once: the wake-up latency is the time from
//!   one release begun to the next acquire returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lock::{AcquireOptions, Acquisition, Guard, Lock, LockName, Ttl, Wait};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::Res;
use crate::floor_postgres::sessions_named;
use crate::floor_redis::client_count;
use crate::procfs::{Fds, monotonic_ns, rss_bytes};
use crate::servers::{Backend, lock_url};
use crate::stats::Spread;

/// The ttl of held leases: no renewal falls inside the measurement.
const HOLD_TTL_MS: u64 = 3_600_000;
/// Tasks taking the leases at once.
const CONCURRENCY: usize = 32;
/// The waiters handle's `application_name` on Postgres, to find its sessions.
const WAITERS_APP: &str = "lock-bench-waiters";

/// The scale section's figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleReport {
    /// Many leases held at once.
    pub leases: LeasesReport,
    /// Many waiters on one name.
    pub waiters: WaitersReport,
}

/// Many leases held at once by one process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeasesReport {
    /// Leases held at once.
    pub held: usize,
    /// What "held" means here.
    pub held_as: String,
    /// Resident set before the first acquisition, bytes.
    pub rss_before_bytes: u64,
    /// Resident set with all of them held, bytes.
    pub rss_held_bytes: u64,
    /// Growth per held lease, bytes.
    pub bytes_per_lease: f64,
    /// Acquisitions per second (32 tasks on one handle).
    pub acquire_per_s: f64,
    /// Releases per second (32 tasks on one handle).
    pub release_per_s: f64,
}

/// Many waiters on one name, one handle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WaitersReport {
    /// Waiting tasks.
    pub waiters: usize,
    /// How connections are counted.
    pub counted_as: String,
    /// Connections (or descriptors) of the handle with one waiter.
    pub connections_one_waiter: usize,
    /// With every waiter waiting.
    pub connections_all_waiters: usize,
    /// The most a handle may use whatever the number of waiters.
    pub connections_bound: usize,
    /// Inotify instances of the process with every waiter waiting (files only; 0 elsewhere).
    pub inotify_instances: usize,
    /// Release begun → the next waiter's acquire returned, over every handoff.
    pub wake: Spread,
    /// From the holder's release until the last waiter had had its turn, ms.
    pub all_through_ms: f64,
}

/// Counts what a handle holds open, as the backend shows it.
enum Counter {
    Redis {
        conn: redis::aio::MultiplexedConnection,
        baseline: usize,
    },
    Postgres(sqlx::PgConnection),
    File {
        baseline: Fds,
    },
}

impl Counter {
    /// A counter whose baseline is taken now, before the handle under test exists.
    async fn new(backend: Backend, base: &str) -> Res<Self> {
        Ok(match backend {
            Backend::Redis => {
                let mut conn = crate::floor_redis::connect(base).await?;
                let baseline = client_count(&mut conn).await?;
                Self::Redis { conn, baseline }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                Self::Postgres(sqlx::PgConnection::connect(base).await?)
            }
            Backend::File => Self::File {
                baseline: Fds::count(),
            },
        })
    }

    /// Connections (descriptors, for files) the handle under test holds now, and inotify
    /// instances.
    async fn count(&mut self) -> Res<(usize, usize)> {
        Ok(match self {
            Self::Redis { conn, baseline } => {
                (client_count(conn).await?.saturating_sub(*baseline), 0)
            }
            Self::Postgres(conn) => (sessions_named(conn, WAITERS_APP).await?, 0),
            Self::File { baseline } => {
                let now = Fds::count();
                (now.open.saturating_sub(baseline.open), now.inotify)
            }
        })
    }

    fn description(&self) -> &'static str {
        match self {
            Self::Redis { .. } => "server CLIENT LIST, minus the clients before the handle",
            Self::Postgres(_) => "server pg_stat_activity sessions of the handle",
            Self::File { .. } => "open descriptors the handle added (/proc/self/fd)",
        }
    }
}

/// The scale worker: measures and prints its [`ScaleReport`] as JSON.
pub async fn worker(backend: Backend, base: &str, leases: usize, waiters: usize) -> Res<()> {
    let report = ScaleReport {
        leases: many_leases(backend, base, leases).await?,
        waiters: many_waiters(backend, base, waiters).await?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn many_leases(backend: Backend, base: &str, count: usize) -> Res<LeasesReport> {
    let lock = lock::connect(&lock_url(backend, base, "scale")).await?;
    let options = AcquireOptions::new()
        .ttl(Ttl::from_millis(HOLD_TTL_MS)?)
        .wait(Wait::No);
    // Warm up the handle on other names, as many at once as the measurement takes them, so
    // that what a handle holds whatever its number of leases (its connection pool at full
    // size, scripts, statements, worker threads) is in the baseline, not counted per lease.
    let mut warm = JoinSet::new();
    for i in 0..CONCURRENCY {
        let (lock, options) = (lock.clone(), options.clone());
        warm.spawn(async move {
            for round in 0..4 {
                let name = LockName::new(format!("warm-{i}-{round}"))?;
                let guard = Guard::acquire(lock.clone(), name, options.clone())
                    .await?
                    .acquired()
                    .ok_or("warm-up lease not acquired")?;
                guard.release().await?;
            }
            Res::Ok(())
        });
    }
    while let Some(done) = warm.join_next().await {
        done??;
    }
    let names: Vec<LockName> = (0..count)
        .map(|i| LockName::new(format!("lease-{i:05}")))
        .collect::<Result<_, _>>()?;
    let rss_before = rss_bytes();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for chunk in names.chunks(count.div_ceil(CONCURRENCY).max(1)) {
        let (lock, options, chunk) = (lock.clone(), options.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let mut guards = Vec::with_capacity(chunk.len());
            for name in chunk {
                match Guard::acquire(lock.clone(), name, options.clone()).await? {
                    Acquisition::Acquired(guard) => guards.push(guard),
                    other => return Err(format!("a free name answered {other:?}").into()),
                }
            }
            Res::Ok(guards)
        });
    }
    let mut held: Vec<Vec<Guard>> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        held.push(done??);
    }
    drop(names);
    let acquire_secs = start.elapsed().as_secs_f64();
    let rss_held = rss_bytes();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for guards in held {
        tasks.spawn(async move {
            for guard in guards {
                guard.release().await?;
            }
            Res::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let release_secs = start.elapsed().as_secs_f64();
    Ok(LeasesReport {
        held: count,
        held_as: format!(
            "a lock::Guard per lease (renewer task running; ttl {} s, renewal every {} s)",
            HOLD_TTL_MS / 1000,
            HOLD_TTL_MS / 3000
        ),
        rss_before_bytes: rss_before,
        rss_held_bytes: rss_held,
        bytes_per_lease: rss_held.saturating_sub(rss_before) as f64 / count.max(1) as f64,
        acquire_per_s: count as f64 / acquire_secs,
        release_per_s: count as f64 / release_secs,
    })
}

async fn many_waiters(backend: Backend, base: &str, count: usize) -> Res<WaitersReport> {
    let mut counter = Counter::new(backend, base).await?;
    let mut url = lock_url(backend, base, "waiters");
    if backend == Backend::Postgres {
        url.push_str(&format!("&application_name={WAITERS_APP}"));
    }
    let lock = lock::connect(&url).await?;
    let name = LockName::new("wanted")?;
    let options = AcquireOptions::new()
        .ttl(Ttl::from_millis(30_000)?)
        .wait(Wait::Forever);
    let holder = Guard::acquire(lock.clone(), name.clone(), options.clone().wait(Wait::No))
        .await?
        .acquired()
        .ok_or("the holder did not get the lock")?;
    let settle = Duration::from_millis(if count > 20 { 500 } else { 200 });
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<Res<(u64, u64)>>, lock: &Arc<dyn Lock>| {
        let (lock, name, options) = (lock.clone(), name.clone(), options.clone());
        tasks.spawn(async move {
            let guard = Guard::acquire(lock, name, options)
                .await?
                .acquired()
                .ok_or("waiting forever did not acquire")?;
            let acquired = monotonic_ns();
            let release_start = monotonic_ns();
            guard.release().await?;
            Ok((acquired, release_start))
        });
    };
    spawn(&mut tasks, &lock);
    tokio::time::sleep(settle).await;
    let (one, _) = counter.count().await?;
    for _ in 1..count {
        spawn(&mut tasks, &lock);
    }
    tokio::time::sleep(settle).await;
    let (all, inotify) = counter.count().await?;
    if tasks.try_join_next().is_some() {
        return Err("a waiter finished while the holder held".into());
    }
    let released_at = monotonic_ns();
    holder.release().await?;
    let mut turns = Vec::with_capacity(count);
    let deadline = Duration::from_secs(120);
    while let Some(done) = tokio::time::timeout(deadline, tasks.join_next())
        .await
        .map_err(|_| "the waiters did not all get their turn within 2 minutes")?
    {
        turns.push(done??);
    }
    turns.sort_unstable();
    let mut wakes = Vec::with_capacity(count);
    let mut previous_release = released_at;
    for (acquired, release_start) in &turns {
        wakes.push(acquired.saturating_sub(previous_release));
        previous_release = *release_start;
    }
    let last = turns.last().map_or(released_at, |(acquired, _)| *acquired);
    Ok(WaitersReport {
        waiters: count,
        counted_as: counter.description().to_owned(),
        connections_one_waiter: one,
        connections_all_waiters: all,
        connections_bound: match backend {
            // The command connection and the pub/sub connection.
            Backend::Redis => 2,
            // The pool (pool_max, 10 by default) and the LISTEN connection.
            Backend::Postgres => 11,
            // The watcher (an inotify instance, and the two ends of the pipe that ends its
            // thread), and a lock file open for an operation in flight.
            Backend::File => 4,
        },
        inotify_instances: inotify,
        wake: Spread::of_nanos(&wakes),
        all_through_ms: last.saturating_sub(released_at) as f64 / 1e6,
    })
}

/// Runs the scale worker for `backend` in a process of its own and reads its report.
pub fn run(backend: Backend, base: &str, leases: usize, waiters: usize) -> Res<ScaleReport> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["__scale", "--backend", backend.as_str(), "--base", base])
        .args([
            "--leases",
            &leases.to_string(),
            "--waiters",
            &waiters.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("the scale worker failed: {}", output.status).into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

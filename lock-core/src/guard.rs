//! [`Guard`]: a held lease that renews itself and says at once when it is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;

use crate::metrics;
use crate::wait::{SayWaiting, acquire_timed};
use crate::{
    Acquiring, Acquisition, Claim, Error, FencingToken, Holder, HolderTie, InvalidInput, Kind,
    Lease, Lock, LockName, OwnerId, ReleaseOutcome, RenewOutcome, Ttl, Wait,
};

/// Called when an acquisition starts to wait: with the holder, or `None` when the name is open
/// but others stand ahead in its line.
type OnWaiting = Arc<SayWaiting>;

/// How to acquire a [`Guard`]: ttl, wait, owner, renewal interval, whether the lease is tied
/// to this process, and what to say when it waits.
#[derive(Clone)]
pub struct AcquireOptions {
    ttl: Ttl,
    wait: Wait,
    owner: Option<OwnerId>,
    renew_every: Option<Duration>,
    tie: bool,
    kind: Kind,
    on_waiting: Option<OnWaiting>,
}

impl std::fmt::Debug for AcquireOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcquireOptions")
            .field("ttl", &self.ttl)
            .field("wait", &self.wait)
            .field("owner", &self.owner)
            .field("renew_every", &self.renew_every)
            .field("tie", &self.tie)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Default for AcquireOptions {
    fn default() -> Self {
        Self {
            ttl: Ttl::default(),
            wait: Wait::default(),
            owner: None,
            renew_every: None,
            tie: true,
            kind: Kind::Exclusive,
            on_waiting: None,
        }
    }
}

impl AcquireOptions {
    /// Defaults: an exclusive lease, ttl 30 s, wait forever, a fresh random owner, renewal
    /// every ttl/3, the lease tied to this process where the backend can.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lease's ttl.
    pub fn ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    /// How the lease holds the name: [`Kind::Shared`] for a reader, [`Kind::permit`] for one
    /// of N permits; exclusive by default. A guard of any kind renews and reports its loss the
    /// same way.
    pub fn kind(mut self, kind: Kind) -> Self {
        self.kind = kind.normalized();
        self
    }

    /// How long to wait for another owner's lease to end.
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Acquire as this owner instead of a fresh random one.
    pub fn owner(mut self, owner: OwnerId) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Renew this often instead of every ttl/3. Must be above zero and below the ttl.
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = Some(every);
        self
    }

    /// Whether to tie the lease to the life of this process ([`Lock::tie`]) on a backend with
    /// [`Capabilities::holder_tie`](crate::Capabilities::holder_tie); on by default, so that a
    /// holder that crashes frees the name at once. Elsewhere this changes nothing: the lease
    /// of a crashed holder lapses after its ttl.
    pub fn tie(mut self, tie: bool) -> Self {
        self.tie = tie;
        self
    }

    /// Calls `f` once, when the acquisition starts to wait (its first try found the name
    /// taken): with the holder, or `None` when the name is open but others stand ahead in its
    /// line. Not called for [`Wait::No`], nor when the first try succeeds. For saying whom
    /// the acquisition waits for.
    pub fn on_waiting(mut self, f: impl Fn(Option<&Holder>) + Send + Sync + 'static) -> Self {
        self.on_waiting = Some(Arc::new(f));
        self
    }
}

/// Why a guard's lease was lost.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LossReason {
    /// A renewal was answered [`RenewOutcome::Lost`]: the lease had expired, was force
    /// released, or another owner holds it now.
    Refused,
    /// No renewal succeeded before the lease must have expired (the backend was unreachable
    /// or too slow). Judged on the monotonic clock from the send time of the last successful
    /// grant or renewal, so it never fires late.
    Unreachable {
        /// The last error seen, if any (a renewal may also have hung without one).
        last_error: Option<String>,
    },
}

impl std::fmt::Display for LossReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused => {
                f.write_str("the backend refused the renewal: the lease had lapsed or was taken")
            }
            Self::Unreachable {
                last_error: Some(e),
            } => {
                write!(
                    f,
                    "no renewal succeeded before the lease expired; last error: {e}"
                )
            }
            Self::Unreachable { last_error: None } => {
                f.write_str("no renewal answered before the lease expired")
            }
        }
    }
}

/// A held lease: renews itself in the background and says at once when it is lost.
///
/// - renewal every ttl/3 by default ([`AcquireOptions::renew_every`]);
/// - [`Guard::lost`] completes the moment a renewal is refused or the lease must have expired
///   without a successful renewal, with a [`LossReason`]; a process stopped past
///   [`Guard::valid_until`] (`SIGSTOP`, a paused VM) is told so on waking, and its guard does
///   not renew afterwards, even where the backend would still have accepted the renewal;
/// - [`Guard::release`] gives the lease up and says how that went; dropping the guard stops
///   the renewals and releases in the background, best effort (the lease lapses after its ttl
///   if that release cannot be sent);
/// - on a backend with [`Capabilities::holder_tie`](crate::Capabilities::holder_tie), the
///   lease is tied to this process ([`Guard::tie`]): if the process dies, the name is free at
///   once, not after the ttl.
///
/// ```
/// # async fn demo() -> Result<(), lock_core::Error> {
/// use std::sync::Arc;
/// use lock_core::{AcquireOptions, Acquisition, Guard, LockName, MemoryLock, Ttl, Wait};
///
/// let lock = Arc::new(MemoryLock::new());
/// let name = LockName::new("nightly-report")?;
/// let options = AcquireOptions::new().ttl(Ttl::from_millis(10_000)?).wait(Wait::No);
/// if let Acquisition::Acquired(guard) = Guard::acquire(lock, name, options).await? {
///     let token = guard.token(); // hand it to the resource you guard
///     tokio::select! {
///         reason = guard.lost() => eprintln!("lost the lock: {reason}"),
///         () = async { /* the work */ } => {}
///     }
///     guard.release().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Guard {
    lock: Arc<dyn Lock>,
    lease: Lease,
    loss: watch::Receiver<Option<LossReason>>,
    valid_until: watch::Receiver<Instant>,
    renewer: JoinHandle<()>,
    released: bool,
    /// Dropped with the guard: the lease then ends at once (after the release, or instead).
    tie: Option<HolderTie>,
    /// When the grant was sent: the start of the hold `lock_hold_seconds` records.
    granted: Instant,
}

impl Guard {
    /// Acquires `name` on `lock` as `options` say, and starts renewing: a future of the
    /// [`Acquisition`], which gives up what it may have left on the backend when dropped or
    /// [cancelled](Acquiring::cancel) before its end.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a renewal interval that is zero or not below the ttl, or a
    /// kind the backend does not offer (before the backend is touched), or a kind that does
    /// not match the name's live leases; otherwise the backend's error. A tie that fails after
    /// the grant releases the lease again, best effort, before the error is returned.
    pub fn acquire(lock: Arc<dyn Lock>, name: LockName, options: AcquireOptions) -> Acquiring {
        let owner = options.owner.clone().unwrap_or_else(OwnerId::random);
        let inner = Self::acquire_as(lock.clone(), name.clone(), owner.clone(), options);
        Acquiring::new(inner, lock, name, owner)
    }

    async fn acquire_as(
        lock: Arc<dyn Lock>,
        name: LockName,
        owner: OwnerId,
        options: AcquireOptions,
    ) -> Result<Acquisition<Guard>, Error> {
        let ttl = options.ttl;
        let every = options.renew_every.unwrap_or(ttl.duration() / 3);
        if every.is_zero() || every >= ttl.duration() {
            return Err(InvalidInput::RenewInterval {
                every,
                ttl: ttl.duration(),
            }
            .into());
        }
        let on_waiting = options.on_waiting.as_deref();
        let claim = Claim::new(&name, &owner, ttl).with_kind(options.kind);
        let (acquisition, sent) = acquire_timed(&*lock, claim, options.wait, on_waiting).await?;
        Ok(match acquisition {
            Acquisition::Acquired(lease) => {
                let tie = if options.tie && lock.capabilities().holder_tie {
                    match lock.tie(&name, &owner).await {
                        Ok(tie) => tie,
                        Err(e) => {
                            let _ = lock.release(&name, &owner).await;
                            return Err(e);
                        }
                    }
                } else {
                    None
                };
                Acquisition::Acquired(Self::start(lock, lease, every, sent, tie))
            }
            Acquisition::Held(h) => Acquisition::Held(h),
            Acquisition::TimedOut(h) => Acquisition::TimedOut(h),
        })
    }

    fn start(
        lock: Arc<dyn Lock>,
        lease: Lease,
        every: Duration,
        sent: Instant,
        tie: Option<HolderTie>,
    ) -> Self {
        let (tx, loss) = watch::channel(None);
        let (valid_tx, valid_until) = watch::channel(sent + lease.ttl.duration());
        let renewer = tokio::spawn(renew_loop(
            lock.clone(),
            lease.clone(),
            every,
            sent,
            Reports {
                loss: tx,
                valid_until: valid_tx,
            },
        ));
        Self {
            lock,
            lease,
            loss,
            valid_until,
            renewer,
            released: false,
            tie,
            granted: sent,
        }
    }

    /// The fencing token of this acquisition.
    pub fn token(&self) -> FencingToken {
        self.lease.token
    }

    /// The lease as granted.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Completes when the lease is lost, with the reason; never, while it is held.
    /// Cancel-safe: call it in a `select!` as often as you like.
    pub async fn lost(&self) -> LossReason {
        let mut rx = self.loss.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().expect("waited for Some"),
            // The renewer only goes away without a loss once the guard is released.
            Err(_) => std::future::pending().await,
        }
    }

    /// The loss, if it has happened.
    pub fn loss(&self) -> Option<LossReason> {
        self.loss.borrow().clone()
    }

    /// Until when this process may rely on the lease without hearing from the backend again:
    /// the send time of the last successful grant or renewal, plus the ttl.
    ///
    /// The backend's own expiry is never earlier (it started counting after the request was
    /// sent), so work that ends before this instant ran under the lease. It is also the
    /// instant at which [`Guard::lost`] fires when no renewal gets through. After a refused
    /// renewal the lease is gone at once, whatever this says: check [`Guard::loss`] too.
    pub fn valid_until(&self) -> Instant {
        *self.valid_until.borrow()
    }

    /// [`Guard::valid_until`] as it moves: the receiver sees each successful renewal's new
    /// instant, for a watchdog that must act before the lease can lapse (another process
    /// that stops the work if this one stops renewing, say).
    pub fn valid_until_changes(&self) -> watch::Receiver<Instant> {
        self.valid_until.clone()
    }

    /// The tie of the lease to this process ([`Lock::tie`]), when the backend made one: hand a
    /// copy ([`HolderTie::try_clone`], or the descriptor inherited) to the processes doing the
    /// work, so that the lease stands until they are gone too. `None` on a backend without
    /// [`Capabilities::holder_tie`](crate::Capabilities::holder_tie), or with
    /// [`AcquireOptions::tie`] off.
    pub fn tie(&self) -> Option<&HolderTie> {
        self.tie.as_ref()
    }

    /// Stops renewing and releases the lease.
    ///
    /// # Errors
    /// The backend's error; the lease then lapses after its ttl.
    pub async fn release(mut self) -> Result<ReleaseOutcome, Error> {
        self.released = true;
        self.renewer.abort();
        self.record_hold();
        let span = tracing::debug_span!("lock.release", backend = self.lock.backend_name(), name = %self.lease.name);
        self.lock
            .release(&self.lease.name, &self.lease.owner)
            .instrument(span)
            .await
    }

    /// The hold, from its grant until now, in `lock_hold_seconds`.
    fn record_hold(&self) {
        let backend = self.lock.backend_name();
        metrics::hold(backend, self.lease.kind, self.granted.elapsed());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.renewer.abort();
        self.record_hold();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let lock = self.lock.clone();
            let Lease { name, owner, .. } = self.lease.clone();
            runtime.spawn(async move {
                if let Err(e) = lock.release(&name, &owner).await {
                    tracing::warn!(%name, error = %e, "release on drop failed; the lease lapses after its ttl");
                }
            });
        }
    }
}

/// What the renewer tells its guard.
struct Reports {
    loss: watch::Sender<Option<LossReason>>,
    valid_until: watch::Sender<Instant>,
}

/// Renews every `every`; reports a loss as soon as a renewal is refused, or when `sent + ttl`
/// of the last successful renewal passes without a new one (and counts it in
/// `lock_losses_total`).
async fn renew_loop(
    lock: Arc<dyn Lock>,
    lease: Lease,
    every: Duration,
    mut sent: Instant,
    reports: Reports,
) {
    let lose = |reason: LossReason| {
        let backend = lock.backend_name();
        tracing::debug!(backend, name = %lease.name, %reason, "lease lost");
        metrics::loss(backend, &reason);
        reports.loss.send_replace(Some(reason));
    };
    let ttl = lease.ttl;
    let retry = (every / 3).max(Duration::from_millis(5)).min(every);
    let mut next = sent + every;
    let mut last_error = None;
    loop {
        let valid_until = sent + ttl.duration();
        let expired = || LossReason::Unreachable {
            last_error: last_error.clone(),
        };
        // The deadline first, in both waits: a process woken after being stopped (SIGSTOP,
        // a VM pause) finds every timer due at once, and must not renew a lease it has
        // stopped vouching for.
        tokio::select! {
            biased;
            () = sleep_until(valid_until) => return lose(expired()),
            () = sleep_until(next) => {}
        }
        let attempt = Instant::now();
        if attempt >= valid_until {
            return lose(expired());
        }
        let result = tokio::select! {
            biased;
            () = sleep_until(valid_until) => return lose(expired()),
            result = lock.renew(&lease.name, &lease.owner, ttl) => result,
        };
        match result {
            Ok(RenewOutcome::Renewed(_)) => {
                sent = attempt;
                reports.valid_until.send_replace(sent + ttl.duration());
                next = attempt + every;
                last_error = None;
            }
            Ok(RenewOutcome::Lost) => return lose(LossReason::Refused),
            Err(e) => {
                metrics::renewal_failed(lock.backend_name());
                tracing::warn!(name = %lease.name, error = %e, "renewal failed; retrying until the lease would expire");
                last_error = Some(e.to_string());
                next = Instant::now() + retry;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU8, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::Claim;
    use crate::{AcquireOutcome, Capabilities, LockState, MemoryLock};

    const WORKS: u8 = 0;
    const FAILS: u8 = 1;
    const HANGS: u8 = 2;

    /// A memory lock whose renewals can be made to fail or hang.
    #[derive(Debug, Default)]
    struct Flaky {
        inner: MemoryLock,
        renew: AtomicU8,
    }

    #[async_trait]
    impl Lock for Flaky {
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn try_acquire(&self, c: Claim<'_>) -> Result<AcquireOutcome, Error> {
            self.inner.try_acquire(c).await
        }
        async fn renew(&self, n: &LockName, o: &OwnerId, t: Ttl) -> Result<RenewOutcome, Error> {
            match self.renew.load(Ordering::SeqCst) {
                WORKS => self.inner.renew(n, o, t).await,
                FAILS => Err(Error::unreachable(
                    "test",
                    crate::Operation::Renew,
                    "connection refused",
                    None,
                )),
                _ => std::future::pending().await,
            }
        }
        async fn release(&self, n: &LockName, o: &OwnerId) -> Result<ReleaseOutcome, Error> {
            self.inner.release(n, o).await
        }
        async fn force_release(&self, n: &LockName) -> Result<ReleaseOutcome, Error> {
            self.inner.force_release(n).await
        }
        async fn inspect(&self, n: &LockName) -> Result<LockState, Error> {
            self.inner.inspect(n).await
        }
    }

    async fn guard(lock: Arc<Flaky>, ttl_ms: u64) -> Guard {
        let options = AcquireOptions::new()
            .ttl(Ttl::from_millis(ttl_ms).unwrap())
            .wait(Wait::No);
        Guard::acquire(lock, LockName::new("job").unwrap(), options)
            .await
            .unwrap()
            .acquired()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn failing_renewals_fire_unreachable_at_the_last_send_plus_ttl() {
        let lock = Arc::new(Flaky::default());
        let g = guard(lock.clone(), 900).await;
        // Renewals at 300 and 600 ms succeed: the lease is good until 600 + 900 ms.
        tokio::time::sleep(Duration::from_millis(650)).await;
        let last_send = Instant::now() - Duration::from_millis(50);
        lock.renew.store(FAILS, Ordering::SeqCst);
        let reason = g.lost().await;
        let fired = Instant::now() - last_send;
        assert_eq!(
            reason,
            LossReason::Unreachable {
                last_error: Some("backend unreachable: renew: connection refused".into())
            }
        );
        assert_eq!(
            fired,
            Duration::from_millis(900),
            "fires exactly at send + ttl"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn valid_until_is_the_last_successful_send_plus_ttl() {
        let lock = Arc::new(Flaky::default());
        let start = Instant::now();
        let g = guard(lock.clone(), 900).await;
        assert_eq!(g.valid_until(), start + Duration::from_millis(900));
        // Renewals at 300 and 600 ms succeed; the one at 900 fails.
        tokio::time::sleep(Duration::from_millis(650)).await;
        assert_eq!(g.valid_until(), start + Duration::from_millis(1500));
        lock.renew.store(FAILS, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(g.valid_until(), start + Duration::from_millis(1500));
        g.lost().await;
        assert_eq!(Instant::now(), g.valid_until(), "lost fires at valid_until");
    }

    /// A process stopped (`SIGSTOP`, a VM pause) past `valid_until` wakes with every timer of
    /// its renewer due at once: the guard says lost, and does not renew a lease it stopped
    /// vouching for (a renewal that answers in the same instant must not win the race).
    #[tokio::test(start_paused = true)]
    async fn a_process_stopped_past_valid_until_is_told_on_waking() {
        for _ in 0..50 {
            let lock = Arc::new(Flaky::default());
            let g = guard(lock, 300).await;
            tokio::task::yield_now().await; // the renewer waits for its timers
            let was = g.valid_until();
            tokio::time::advance(Duration::from_millis(450)).await; // stopped, then woken
            tokio::time::timeout(Duration::from_millis(1), g.lost())
                .await
                .expect("told at once");
            assert_eq!(g.valid_until(), was, "no renewal after valid_until");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_renewal_fires_at_the_deadline_too() {
        let lock = Arc::new(Flaky::default());
        lock.renew.store(HANGS, Ordering::SeqCst);
        let start = Instant::now();
        let g = guard(lock, 600).await;
        assert_eq!(g.lost().await, LossReason::Unreachable { last_error: None });
        assert_eq!(start.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_heals_before_the_deadline_is_no_loss() {
        let lock = Arc::new(Flaky::default());
        let g = guard(lock.clone(), 900).await;
        lock.renew.store(FAILS, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(700)).await;
        lock.renew.store(WORKS, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert_eq!(g.loss(), None);
    }

    #[tokio::test]
    async fn a_refused_renewal_fires_refused() {
        let lock = Arc::new(Flaky::default());
        let g = guard(lock.clone(), 300).await;
        lock.force_release(&LockName::new("job").unwrap())
            .await
            .unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(5), g.lost())
            .await
            .unwrap();
        assert_eq!(reason, LossReason::Refused);
    }

    #[tokio::test]
    async fn a_renewal_interval_not_below_the_ttl_is_refused_before_the_backend() {
        let lock = Arc::new(Flaky::default());
        for every in [
            Duration::ZERO,
            Duration::from_millis(300),
            Duration::from_secs(1),
        ] {
            let options = AcquireOptions::new()
                .ttl(Ttl::from_millis(300).unwrap())
                .renew_every(every);
            let err = Guard::acquire(lock.clone(), LockName::new("job").unwrap(), options)
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput(InvalidInput::RenewInterval { .. })),
                "{every:?}"
            );
        }
        assert_eq!(
            lock.inspect(&LockName::new("job").unwrap()).await.unwrap(),
            LockState::Open
        );
    }
}

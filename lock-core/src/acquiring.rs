//! [`Acquiring`]: a guard's acquisition under way, which cleans up after itself when dropped
//! or cancelled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::{Acquisition, Error, Guard, Lock, LockName, OwnerId};

type Inner = Pin<Box<dyn Future<Output = Result<Acquisition<Guard>, Error>> + Send>>;

/// What [`Guard::acquire`] returns: a future of the acquisition that, when it does not run to
/// its end, gives up what it may have left on the backend.
///
/// A wait dropped midway may leave two things behind: a try that the backend granted but
/// whose answer never came back (a lease nobody renews), and the owner's place in the name's
/// line. [`Acquiring::cancel`] gives both up and returns once that is done; dropping the
/// future does the same in a background task, best effort (without a runtime, they lapse: the
/// lease after its ttl, the place after [`LINE_PATIENCE`](crate::raw::LINE_PATIENCE)).
///
/// Giving up means releasing the name for the acquisition's owner, so do not cancel the
/// re-acquisition of a lease that owner already holds and wants to keep.
///
/// ```
/// # async fn demo(lock: std::sync::Arc<dyn lock_core::Lock>) -> Result<(), lock_core::Error> {
/// use std::time::Duration;
/// use lock_core::{AcquireOptions, Guard, LockName};
///
/// let mut acquiring = Guard::acquire(lock, LockName::new("nightly")?, AcquireOptions::new());
/// tokio::select! {
///     acquisition = &mut acquiring => { let _guard = acquisition?.acquired(); }
///     () = tokio::time::sleep(Duration::from_secs(1)) => acquiring.cancel().await,
/// }
/// # Ok(()) }
/// ```
#[must_use = "an acquisition does nothing unless awaited"]
pub struct Acquiring {
    inner: Option<Inner>,
    cleanup: Option<Cleanup>,
    /// Polled at least once: before that, nothing was sent and there is nothing to give up.
    started: bool,
}

impl std::fmt::Debug for Acquiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquiring")
            .field("done", &self.inner.is_none())
            .finish_non_exhaustive()
    }
}

impl Acquiring {
    pub(crate) fn new(
        inner: impl Future<Output = Result<Acquisition<Guard>, Error>> + Send + 'static,
        lock: Arc<dyn Lock>,
        name: LockName,
        owner: OwnerId,
    ) -> Self {
        Self {
            inner: Some(Box::pin(inner)),
            cleanup: Some(Cleanup { lock, name, owner }),
            started: false,
        }
    }

    /// Stops the acquisition and gives up what it may have left: a grant whose answer was
    /// lost is released, the place in line is left. Errors are logged, not returned: what
    /// could not be given up lapses by itself. Does nothing once the acquisition has ended.
    pub async fn cancel(mut self) {
        self.inner = None; // no try goes on while the cleanup runs
        if let Some(cleanup) = self.cleanup.take().filter(|_| self.started) {
            cleanup.run().await;
        }
    }
}

impl Future for Acquiring {
    type Output = Result<Acquisition<Guard>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            panic!("`Acquiring` polled after it completed");
        };
        let poll = inner.as_mut().poll(cx);
        self.started = true;
        let out = std::task::ready!(poll);
        self.inner = None;
        self.cleanup = None; // it ran to its end: nothing to give up
        Poll::Ready(out)
    }
}

impl Drop for Acquiring {
    fn drop(&mut self) {
        self.inner = None;
        if let Some(cleanup) = self.cleanup.take().filter(|_| self.started)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(cleanup.run());
        }
    }
}

/// What a dropped acquisition gives up.
struct Cleanup {
    lock: Arc<dyn Lock>,
    name: LockName,
    owner: OwnerId,
}

impl Cleanup {
    async fn run(self) {
        let Self { lock, name, owner } = self;
        if let Err(e) = lock.release(&name, &owner).await {
            tracing::warn!(%name, error = %e, "giving up a cancelled acquisition failed; a grant lapses after its ttl");
        }
        if let Err(e) = lock.leave_line(&name, &owner).await {
            tracing::warn!(%name, error = %e, "leaving the line failed; the place lapses by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Claim;
    use crate::raw::InLineOutcome;
    use crate::{AcquireOptions, LockState, MemoryLock, Ttl, Wait};

    fn job() -> LockName {
        LockName::new("job").unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3_600);

    /// `a` holds the name for an hour and `b` waits for it, standing in line.
    async fn waiting_behind(lock: &Arc<MemoryLock>, a: &OwnerId, b: OwnerId) -> Acquiring {
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        lock.try_acquire(Claim::new(&job(), a, ttl)).await.unwrap();
        let options = AcquireOptions::new().owner(b).wait(Wait::Forever);
        let mut acquiring = Guard::acquire(lock.clone(), job(), options);
        let early = tokio::time::timeout(Duration::from_millis(50), &mut acquiring).await;
        assert!(early.is_err(), "b must be waiting");
        acquiring
    }

    /// `c` stands in line, `a` releases: `c` is handed the name, so no one stands ahead.
    async fn assert_first_in_line_after(lock: &MemoryLock, a: &OwnerId, c: &OwnerId) {
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        lock.try_acquire_in_line(Claim::new(&job(), c, ttl), HOUR)
            .await
            .unwrap();
        lock.release(&job(), a).await.unwrap();
        let next = lock
            .try_acquire_in_line(Claim::new(&job(), c, ttl), HOUR)
            .await
            .unwrap();
        assert!(
            matches!(next, InLineOutcome::Acquired(_)),
            "b's place is gone: {next:?}"
        );
    }

    /// A waiter cancelled while it stands in line leaves it: the next waiter is first.
    #[tokio::test]
    async fn cancel_leaves_the_line() {
        let lock = Arc::new(MemoryLock::new());
        let (a, b, c) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
        let acquiring = waiting_behind(&lock, &a, b).await;
        acquiring.cancel().await;
        assert_first_in_line_after(&lock, &a, &c).await;
    }

    /// A grant whose answer is lost to the cancellation (here: cancelled while the guard's tie
    /// is being made, after the grant) is released.
    #[tokio::test]
    async fn cancel_releases_a_grant_whose_answer_was_lost() {
        #[derive(Debug, Default)]
        struct SlowTie(MemoryLock);
        #[async_trait::async_trait]
        impl Lock for SlowTie {
            fn capabilities(&self) -> crate::Capabilities {
                crate::Capabilities {
                    holder_tie: true,
                    ..self.0.capabilities()
                }
            }
            async fn try_acquire(&self, c: Claim<'_>) -> Result<crate::AcquireOutcome, Error> {
                self.0.try_acquire(c).await
            }
            async fn renew(
                &self,
                n: &LockName,
                o: &OwnerId,
                t: Ttl,
            ) -> Result<crate::RenewOutcome, Error> {
                self.0.renew(n, o, t).await
            }
            async fn release(
                &self,
                n: &LockName,
                o: &OwnerId,
            ) -> Result<crate::ReleaseOutcome, Error> {
                self.0.release(n, o).await
            }
            async fn force_release(&self, n: &LockName) -> Result<crate::ReleaseOutcome, Error> {
                self.0.force_release(n).await
            }
            async fn inspect(&self, n: &LockName) -> Result<LockState, Error> {
                self.0.inspect(n).await
            }
            async fn tie(
                &self,
                _: &LockName,
                _: &OwnerId,
            ) -> Result<Option<crate::HolderTie>, Error> {
                std::future::pending().await
            }
        }
        let lock = Arc::new(SlowTie::default());
        let mut acquiring = Guard::acquire(lock.clone(), job(), AcquireOptions::new());
        let early = tokio::time::timeout(Duration::from_millis(50), &mut acquiring).await;
        assert!(early.is_err(), "stuck in the tie");
        assert!(matches!(
            lock.inspect(&job()).await.unwrap(),
            LockState::Locked(_)
        ));
        acquiring.cancel().await;
        assert_eq!(lock.inspect(&job()).await.unwrap(), LockState::Open);
    }

    /// Dropped instead of cancelled: the same, in the background.
    #[tokio::test]
    async fn drop_gives_up_in_the_background() {
        let lock = Arc::new(MemoryLock::new());
        let (a, b, c) = (OwnerId::random(), OwnerId::random(), OwnerId::random());
        let acquiring = waiting_behind(&lock, &a, b).await;
        drop(acquiring);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_first_in_line_after(&lock, &a, &c).await;
    }

    /// `on_waiting` is told once, with the holder, as a wait begins; never for a single try.
    #[tokio::test]
    async fn on_waiting_says_whom_a_wait_waits_for() {
        use std::sync::Mutex;
        let lock = Arc::new(MemoryLock::new());
        let a = OwnerId::random();
        lock.try_acquire(Claim::new(&job(), &a, Ttl::from_millis(300).unwrap()))
            .await
            .unwrap();
        let said = Arc::new(Mutex::new(Vec::new()));
        let options = |wait| {
            let said = said.clone();
            AcquireOptions::new().wait(wait).on_waiting(move |h| {
                said.lock().unwrap().push(h.map(|h| h.owner.clone()));
            })
        };
        let held = Guard::acquire(lock.clone(), job(), options(Wait::No)).await;
        assert!(matches!(held.unwrap(), Acquisition::Held(_)));
        assert!(
            said.lock().unwrap().is_empty(),
            "a single try does not wait"
        );
        let got = Guard::acquire(lock.clone(), job(), options(Wait::Forever)).await;
        assert!(got.unwrap().acquired().is_some(), "after a's lease lapsed");
        assert_eq!(*said.lock().unwrap(), vec![Some(a)], "told once, naming a");
    }

    /// One never polled sent nothing, and gives nothing up: a lease its owner holds stays.
    #[tokio::test]
    async fn one_never_polled_gives_nothing_up() {
        let lock = Arc::new(MemoryLock::new());
        let a = OwnerId::random();
        let ttl = Ttl::from_millis(3_600_000).unwrap();
        lock.try_acquire(Claim::new(&job(), &a, ttl)).await.unwrap();
        let options = AcquireOptions::new().owner(a);
        Guard::acquire(lock.clone(), job(), options.clone())
            .cancel()
            .await;
        drop(Guard::acquire(lock.clone(), job(), options));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            lock.inspect(&job()).await.unwrap(),
            LockState::Locked(_)
        ));
    }

    /// An acquisition that ran to its end gives nothing up when dropped afterwards.
    #[tokio::test]
    async fn a_finished_acquisition_gives_nothing_up() {
        let lock = Arc::new(MemoryLock::new());
        let guard = Guard::acquire(lock.clone(), job(), AcquireOptions::new())
            .await
            .unwrap()
            .acquired()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(
            lock.inspect(&job()).await.unwrap(),
            LockState::Locked(_)
        ));
        drop(guard);
    }
}

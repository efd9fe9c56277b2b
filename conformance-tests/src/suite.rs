//! [`Suite`], [`Setup`] and [`Client`]: what every case is handed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lock_core::raw::InLineOutcome;
use lock_core::{
    AcquireOutcome, Acquisition, Capabilities, Claim, HolderTie, Kind, Lease, Lock, LockName,
    LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl, Wait,
};

/// How the suite reaches a backend. Implement it once per backend; `suite!` does the rest.
///
/// ```
/// use std::sync::Arc;
///
/// use conformance_tests::{Setup, async_trait};
/// use lock_core::{Lock, MemoryLock};
///
/// struct Memory(Arc<MemoryLock>);
///
/// #[async_trait]
/// impl Setup for Memory {
///     fn location(&self) -> String {
///         "memory".into()
///     }
///
///     async fn connect(&self, _location: &str) -> Arc<dyn Lock> {
///         self.0.clone()
///     }
/// }
/// ```
#[async_trait]
pub trait Setup: Send + Sync + 'static {
    /// Starts (once per process) what the backend needs, and says where it is: a URL, a
    /// directory. The cross-process case hands this text to its worker processes, which pass
    /// it to [`Setup::connect`], so it must name the same backend from any process.
    fn location(&self) -> String;

    /// A fresh handle to the backend at `location`: one simulated client, with its own
    /// connections where the backend has any.
    async fn connect(&self, location: &str) -> Arc<dyn Lock>;
}

/// What a case is handed: fresh handles, the backend's capabilities, unique names.
pub struct Suite {
    setup: Arc<dyn Setup>,
    location: String,
    capabilities: Capabilities,
    case: &'static str,
    /// The trial's name less the case's: `""`, or `"session::"` where a test binary runs
    /// the suite against several setups.
    trial_prefix: &'static str,
    /// Before every lock name, so that no other case or run uses it.
    prefix: String,
}

/// One simulated client: its own handle and owner id.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's handle.
    pub lock: Arc<dyn Lock>,
    /// The client's owner id.
    pub owner: OwnerId,
}

/// A future a case returns.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

impl Suite {
    /// A suite for `case` on `setup`, whose handles report `capabilities`.
    pub(crate) fn new(
        setup: Arc<dyn Setup>,
        location: String,
        capabilities: Capabilities,
        case: &'static str,
        trial_prefix: &'static str,
    ) -> Self {
        Self {
            setup,
            location,
            capabilities,
            case,
            trial_prefix,
            prefix: OwnerId::random().as_str()[..8].to_owned(),
        }
    }

    /// A fresh handle: a new simulated client's connection to the backend.
    pub async fn handle(&self) -> Arc<dyn Lock> {
        self.setup.connect(&self.location).await
    }

    /// A fresh client: a new handle and a random owner id.
    pub async fn client(&self) -> Client {
        Client {
            lock: self.handle().await,
            owner: OwnerId::random(),
        }
    }

    /// `N` fresh clients.
    pub async fn clients<const N: usize>(&self) -> [Client; N] {
        let mut clients = Vec::with_capacity(N);
        for _ in 0..N {
            clients.push(self.client().await);
        }
        clients.try_into().expect("N clients")
    }

    /// A name no other case or run uses: `label` behind a random prefix.
    pub fn name(&self, label: &str) -> LockName {
        LockName::new(format!("{}-{}-{label}", self.prefix, self.case)).expect("a valid name")
    }

    /// The backend's capabilities.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// The trial's name less the case's (see [`Suite::trial`]).
    pub(crate) fn trial_prefix(&self) -> &'static str {
        self.trial_prefix
    }

    /// The name the test binary runs this case by: the trial prefix, then the case.
    pub(crate) fn trial(&self) -> String {
        format!("{}{}", self.trial_prefix, self.case)
    }
}

/// Short names for the operations, with a failure message naming the call.
impl Client {
    /// Try acquire; panics on a backend error.
    pub async fn acquire(&self, name: &LockName, ttl: Ttl) -> AcquireOutcome {
        self.lock
            .try_acquire(Claim::new(name, &self.owner, ttl))
            .await
            .expect("try_acquire")
    }

    /// Try acquire in line, keeping a place for `patience`; panics on a backend error.
    pub async fn in_line(&self, name: &LockName, ttl: Ttl, patience: Duration) -> InLineOutcome {
        self.lock
            .try_acquire_in_line(Claim::new(name, &self.owner, ttl), patience)
            .await
            .expect("try_acquire_in_line")
    }

    /// Try acquire a lease of `kind`: the answer, or the error (a kind mismatch, say).
    pub async fn claim(
        &self,
        name: &LockName,
        ttl: Ttl,
        kind: Kind,
    ) -> Result<AcquireOutcome, lock_core::Error> {
        let claim = Claim::new(name, &self.owner, ttl).with_kind(kind);
        self.lock.try_acquire(claim).await
    }

    /// Try acquire a lease of `kind` in line, keeping a place for `patience`; panics on a
    /// backend error.
    pub async fn claim_in_line(
        &self,
        name: &LockName,
        ttl: Ttl,
        kind: Kind,
        patience: Duration,
    ) -> InLineOutcome {
        let claim = Claim::new(name, &self.owner, ttl).with_kind(kind);
        self.lock
            .try_acquire_in_line(claim, patience)
            .await
            .expect("try_acquire_in_line")
    }

    /// Acquire a lease of `kind` with wait; panics on a backend error.
    pub async fn wait_for(
        &self,
        name: &LockName,
        ttl: Ttl,
        kind: Kind,
        wait: Wait,
    ) -> Acquisition<Lease> {
        let claim = Claim::new(name, &self.owner, ttl).with_kind(kind);
        lock_core::acquire(&*self.lock, claim, wait)
            .await
            .expect("acquire with wait")
    }

    /// Leave the line; panics on a backend error.
    pub async fn leave_line(&self, name: &LockName) {
        self.lock
            .leave_line(name, &self.owner)
            .await
            .expect("leave_line");
    }

    /// Renew; panics on a backend error.
    pub async fn renew(&self, name: &LockName, ttl: Ttl) -> RenewOutcome {
        self.lock
            .renew(name, &self.owner, ttl)
            .await
            .expect("renew")
    }

    /// Release; panics on a backend error.
    pub async fn release(&self, name: &LockName) -> ReleaseOutcome {
        self.lock.release(name, &self.owner).await.expect("release")
    }

    /// Force release; panics on a backend error.
    pub async fn force_release(&self, name: &LockName) -> ReleaseOutcome {
        self.lock.force_release(name).await.expect("force_release")
    }

    /// Acquire with wait; panics on a backend error.
    pub async fn wait(&self, name: &LockName, ttl: Ttl, wait: Wait) -> Acquisition<Lease> {
        lock_core::acquire(&*self.lock, Claim::new(name, &self.owner, ttl), wait)
            .await
            .expect("acquire with wait")
    }

    /// Tie the lease to this process; panics on a backend error.
    pub async fn tie(&self, name: &LockName) -> Option<HolderTie> {
        self.lock.tie(name, &self.owner).await.expect("tie")
    }

    /// Inspect; panics on a backend error.
    pub async fn inspect(&self, name: &LockName) -> LockState {
        self.lock.inspect(name).await.expect("inspect")
    }
}

/// Milliseconds as a ttl.
pub(crate) fn ttl(millis: u64) -> Ttl {
    Ttl::from_millis(millis).expect("a valid ttl")
}

/// Sleeps for `millis` milliseconds.
pub(crate) async fn sleep_ms(millis: u64) {
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod answer;
mod config;
mod connection;
mod errors;
mod keys;
mod ops;
mod own_client;
mod scripts;
mod watcher;

use lock_core::Operation;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lock_core::raw::{ChangeFuture, InLineOutcome};
use lock_core::{
    AcquireOutcome, Capabilities, Claim, Error, Lock, LockName, LockState, OwnerId, ReleaseOutcome,
    RenewOutcome, Ttl,
};
use redis::ScriptInvocation;

pub use config::{
    Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT,
};
pub use keys::Keys;

use answer::{Answer, Op};
use connection::{CommandConnection, Endpoint};
use watcher::Watcher;

/// Locks in one Redis database: one atomic Lua script per operation, leases that expire by
/// the server's clock, fencing tokens that survive restarts, wake-ups by pub/sub.
///
/// A handle owns one command connection (multiplexed: any number of tasks share it) and,
/// once somebody waits, one pub/sub connection; both reconnect by themselves. Cloning is
/// cheap and shares them. See the crate documentation for the key layout and the guarantees.
#[derive(Clone)]
pub struct RedisLock {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    endpoint: Arc<Endpoint>,
    commands: CommandConnection,
    watcher: Watcher,
}

impl fmt::Debug for RedisLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLock")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    /// Connects to the server a `redis://` or `rediss://` URL names (see [`Config::from_url`])
    /// and checks that it answers as Redis, all within the URL's connect timeout.
    ///
    /// # Errors
    /// - [`Error::InvalidInput`] for a URL that cannot be used;
    /// - [`Error::Unreachable`] when nothing answers (refused, timed out, DNS, TLS);
    /// - [`Error::Backend`] for a server that refuses the credentials or is not Redis.
    ///
    /// No message ever holds the password.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(Config::from_url(url)?).await
    }

    /// [`RedisLock::connect`] with a [`Config`] already read.
    ///
    /// # Errors
    /// As [`RedisLock::connect`].
    pub async fn connect_with(config: Config) -> Result<Self, Error> {
        let endpoint = Arc::new(Endpoint::new(&config)?);
        let commands = CommandConnection::connect(endpoint.clone()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                endpoint,
                commands,
                watcher: Watcher::new(),
            }),
        })
    }

    /// The configuration this handle was made with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The Redis keys and channel that hold `name`'s state.
    pub fn keys(&self, name: &LockName) -> Keys {
        Keys::new(self.inner.config.prefix(), name)
    }

    /// Runs one script for `what` on `name` and hands its answer to `read`.
    pub(crate) async fn run<T>(
        &self,
        what: Operation,
        name: &LockName,
        keys: &Keys,
        invocation: ScriptInvocation<'_>,
        read: impl FnOnce(Answer<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let value = self.inner.commands.run(what, &invocation).await?;
        let op = Op {
            what,
            name,
            lease_key: &keys.lease,
            endpoint: &self.inner.endpoint.shown,
            db: self.inner.config.db(),
        };
        read(Answer::new(&op, value)?)
    }
}

#[async_trait]
impl Lock for RedisLock {
    fn backend_name(&self) -> &'static str {
        "redis"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: true,
            cross_process: true,
            owner_on_any_handle: true,
            fair_line: true,
            holder_tie: false,
            permits: true,
            shared: true,
        }
    }

    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        ops::try_acquire(self, claim.with_kind(claim.kind)).await
    }

    async fn try_acquire_in_line(
        &self,
        claim: Claim<'_>,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        ops::try_acquire_in_line(self, claim.with_kind(claim.kind), patience).await
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        ops::leave_line(self, name, owner).await
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        ops::renew(self, name, owner, ttl).await
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        ops::release(self, name, owner).await
    }

    /// Also repairs a name whose keys hold what this library does not write: the lease key is
    /// deleted whatever it holds, a token key that holds no token is deleted too (tokens then
    /// go on from the server clock), so are line keys of another type, and the answer is
    /// [`ReleaseOutcome::Released`].
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        ops::force_release(self, name).await
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        ops::inspect(self, name).await
    }

    /// Completes at a release or a place left that names `owner` among the waiters the room
    /// now serves, or at a force release: a release wakes only the waiters at the front of the
    /// line that it can serve, not every waiter of the name. Subscribes as
    /// [`watch`](Lock::watch) does.
    async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        let keys = self.keys(name);
        Ok(self
            .inner
            .watcher
            .watch_turn(&self.inner.endpoint, &keys.channel, owner.as_str())
            .await)
    }

    /// Subscribes to `name`'s channel on the handle's pub/sub connection (opened on first
    /// use) and returns once the server has confirmed it; `None` when no pub/sub connection
    /// can be had, so that waiters poll.
    async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        let keys = self.keys(name);
        Ok(self
            .inner
            .watcher
            .watch(&self.inner.endpoint, &keys.channel)
            .await)
    }
}

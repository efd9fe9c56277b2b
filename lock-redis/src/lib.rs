#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod answer;
mod config;
mod connection;
mod errors;
mod keys;
mod scripts;
mod watcher;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lock_core::raw::{ChangeFuture, InLineOutcome};
use lock_core::{
    AcquireOutcome, Capabilities, Error, Lease, Lock, LockName, LockState, OwnerId, ReleaseOutcome,
    RenewOutcome, Ttl,
};
use redis::{Script, ScriptInvocation};

pub use config::{
    Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_PREFIX, DEFAULT_RESPONSE_TIMEOUT,
};
pub use keys::Keys;

use answer::{Answer, Op};
use connection::{Commands, Endpoint};
use scripts::{ACQUIRE, FORCE_RELEASE, IN_LINE, INSPECT, LEAVE_LINE, RELEASE, RENEW};
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
    commands: Commands,
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
        let commands = Commands::connect(endpoint.clone()).await?;
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
    async fn run<T>(
        &self,
        what: &'static str,
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

/// An invocation of `script` with `keys` and `args`.
fn invocation<'a>(script: &'a Script, keys: &[&str], args: &[&str]) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in args {
        invocation.arg(*arg);
    }
    invocation
}

#[async_trait]
impl Lock for RedisLock {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            wake_on_release: true,
            cross_process: true,
            owner_on_any_handle: true,
            fair_line: true,
            holder_tie: false,
        }
    }

    async fn try_acquire(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<AcquireOutcome, Error> {
        let keys = self.keys(name);
        let ms = ttl.as_millis().to_string();
        let call = invocation(
            &ACQUIRE,
            &[&keys.lease, &keys.token],
            &[owner.as_str(), &ms],
        );
        self.run("try acquire", name, &keys, call, |answer| {
            match answer.code()? {
                1 => Ok(AcquireOutcome::Acquired(Lease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token: answer.token(1)?,
                    ttl,
                })),
                0 => Ok(AcquireOutcome::Held(answer.holder(1)?)),
                code => Err(answer.unknown(code)),
            }
        })
        .await
    }

    async fn try_acquire_in_line(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
        patience: Duration,
    ) -> Result<InLineOutcome, Error> {
        let keys = self.keys(name);
        let ms = ttl.as_millis().to_string();
        let patience = lock_core::raw::patience_millis(patience).to_string();
        let call = invocation(
            &IN_LINE,
            &[&keys.lease, &keys.token, &keys.line, &keys.kept],
            &[owner.as_str(), &ms, &patience],
        );
        self.run(
            "try acquire in line",
            name,
            &keys,
            call,
            |answer| match answer.code()? {
                1 => Ok(InLineOutcome::Acquired(Lease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token: answer.token(1)?,
                    ttl,
                })),
                0 => Ok(InLineOutcome::Held(answer.holder(1)?)),
                2 => Ok(InLineOutcome::Behind {
                    first_kept_for: answer.millis(1)?,
                }),
                code => Err(answer.unknown(code)),
            },
        )
        .await
    }

    async fn leave_line(&self, name: &LockName, owner: &OwnerId) -> Result<(), Error> {
        let keys = self.keys(name);
        let call = invocation(
            &LEAVE_LINE,
            &[&keys.line, &keys.kept],
            &[owner.as_str(), &keys.channel],
        );
        self.run("leave line", name, &keys, call, |answer| {
            match answer.code()? {
                0 | 1 => Ok(()),
                code => Err(answer.unknown(code)),
            }
        })
        .await
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        let keys = self.keys(name);
        let ms = ttl.as_millis().to_string();
        let call = invocation(&RENEW, &[&keys.lease], &[owner.as_str(), &ms]);
        self.run("renew", name, &keys, call, |answer| {
            match answer.code()? {
                1 => Ok(RenewOutcome::Renewed(Lease {
                    name: name.clone(),
                    owner: owner.clone(),
                    token: answer.token(1)?,
                    ttl,
                })),
                0 => Ok(RenewOutcome::Lost),
                code => Err(answer.unknown(code)),
            }
        })
        .await
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        let keys = self.keys(name);
        let call = invocation(&RELEASE, &[&keys.lease], &[owner.as_str(), &keys.channel]);
        self.run("release", name, &keys, call, |answer| {
            match answer.code()? {
                1 => Ok(ReleaseOutcome::Released),
                2 => Ok(ReleaseOutcome::NotOwner),
                0 => Ok(ReleaseOutcome::NotLocked),
                code => Err(answer.unknown(code)),
            }
        })
        .await
    }

    /// Also repairs a name whose keys hold what this library does not write: the lease key is
    /// deleted whatever it holds, a token key that holds no token is deleted too (tokens then
    /// go on from the server clock), so are line keys of another type, and the answer is
    /// [`ReleaseOutcome::Released`].
    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        let keys = self.keys(name);
        let call = invocation(
            &FORCE_RELEASE,
            &[&keys.lease, &keys.token, &keys.line, &keys.kept],
            &[&keys.channel],
        );
        self.run("force release", name, &keys, call, |answer| {
            match answer.code()? {
                1 => Ok(ReleaseOutcome::Released),
                0 => Ok(ReleaseOutcome::NotLocked),
                code => Err(answer.unknown(code)),
            }
        })
        .await
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        let keys = self.keys(name);
        let call = invocation(&INSPECT, &[&keys.lease], &[]);
        self.run("inspect", name, &keys, call, |answer| {
            match answer.code()? {
                1 => Ok(LockState::Locked(answer.holder(1)?)),
                0 => Ok(LockState::Open),
                code => Err(answer.unknown(code)),
            }
        })
        .await
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

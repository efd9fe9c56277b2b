//! A backend written as a third party would write one, against the public API of `lock-core`
//! only, and the one line that proves it keeps the contract. The README quotes it.
//!
//! `TableLock` keeps its leases in a table in this process, each with its owner, fencing
//! token and expiry, under one mutex: every operation is atomic. It has expiry and fencing,
//! any handle may act for any owner; it has no change notification, no line, no ties, and is
//! not shared across processes, so the cases that need those are reported as ignored.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use conformance_tests::{Setup, async_trait};
use lock_core::{
    AcquireOutcome, Capabilities, Claim, Error, FencingToken, Holder, Holders, Kind, Lease, Lock,
    LockName, LockState, OwnerId, ReleaseOutcome, RenewOutcome, Ttl,
};

/// A name's state: the last token handed out, and the lease if any.
#[derive(Debug, Default)]
struct Entry {
    last_token: u64,
    lease: Option<(OwnerId, Instant)>,
}

impl Entry {
    /// The owner of the live lease at `now`.
    fn live(&self, now: Instant) -> Option<&OwnerId> {
        self.lease
            .as_ref()
            .filter(|(_, until)| *until > now)
            .map(|(owner, _)| owner)
    }
}

/// Leases in a table, one mutex around it.
#[derive(Debug, Default)]
struct TableLock {
    table: Mutex<HashMap<LockName, Entry>>,
}

impl TableLock {
    fn with<T>(&self, name: &LockName, f: impl FnOnce(&mut Entry, Instant) -> T) -> T {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        f(table.entry(name.clone()).or_default(), Instant::now())
    }
}

fn token(t: u64) -> FencingToken {
    FencingToken::new(t).expect("tokens start at 1")
}

#[async_trait]
impl Lock for TableLock {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            expiry: true,
            fencing: true,
            owner_on_any_handle: true,
            ..Capabilities::default()
        }
    }

    /// Exclusive leases only: no `permits` or `shared` in its capabilities, so another kind
    /// is refused here as the layer above refuses it before calling.
    async fn try_acquire(&self, claim: Claim<'_>) -> Result<AcquireOutcome, Error> {
        self.capabilities().check(claim.kind)?;
        let (name, owner, ttl) = (claim.name, claim.owner, claim.ttl);
        Ok(self.with(name, |e, now| {
            if let Some(holder) = e.live(now).filter(|o| *o != owner) {
                let until = e.lease.as_ref().expect("live").1;
                return AcquireOutcome::Held(Holder {
                    owner: holder.clone(),
                    token: token(e.last_token),
                    expires_in: Some(until - now),
                    kind: Kind::Exclusive,
                });
            }
            if e.live(now).is_none() {
                e.last_token += 1;
            }
            e.lease = Some((owner.clone(), now + ttl.duration()));
            AcquireOutcome::Acquired(claim.lease(token(e.last_token)))
        }))
    }

    async fn renew(
        &self,
        name: &LockName,
        owner: &OwnerId,
        ttl: Ttl,
    ) -> Result<RenewOutcome, Error> {
        Ok(self.with(name, |e, now| {
            if e.live(now) != Some(owner) {
                return RenewOutcome::Lost;
            }
            e.lease = Some((owner.clone(), now + ttl.duration()));
            RenewOutcome::Renewed(Lease {
                name: name.clone(),
                owner: owner.clone(),
                token: token(e.last_token),
                ttl,
                kind: Kind::Exclusive,
            })
        }))
    }

    async fn release(&self, name: &LockName, owner: &OwnerId) -> Result<ReleaseOutcome, Error> {
        Ok(self.with(name, |e, now| match e.live(now) {
            Some(o) if o == owner => {
                e.lease = None;
                ReleaseOutcome::Released
            }
            Some(_) => ReleaseOutcome::NotOwner,
            None => ReleaseOutcome::NotLocked,
        }))
    }

    async fn force_release(&self, name: &LockName) -> Result<ReleaseOutcome, Error> {
        Ok(self.with(name, |e, now| match e.live(now) {
            Some(_) => {
                e.lease = None;
                ReleaseOutcome::Released
            }
            None => ReleaseOutcome::NotLocked,
        }))
    }

    async fn inspect(&self, name: &LockName) -> Result<LockState, Error> {
        Ok(self.with(name, |e, now| match e.live(now) {
            Some(owner) => LockState::Locked(Holders::one(Holder {
                owner: owner.clone(),
                token: token(e.last_token),
                expires_in: e.lease.as_ref().map(|(_, until)| *until - now),
                kind: Kind::Exclusive,
            })),
            None => LockState::Open,
        }))
    }
}

/// One table per test process: every handle the suite opens shares it.
static TABLE: LazyLock<Arc<TableLock>> = LazyLock::new(Arc::default);

/// How the suite reaches the backend.
struct Table;

#[async_trait]
impl Setup for Table {
    fn location(&self) -> String {
        "this process".into()
    }

    async fn connect(&self, _location: &str) -> Arc<dyn Lock> {
        TABLE.clone()
    }
}

conformance_tests::suite!(Table);

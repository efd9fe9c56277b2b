//! Wake-ups on release: one pub/sub connection per handle, shared by all its waiters.
//!
//! A release publishes on the name's channel inside its script, naming the waiters in line the
//! freed room serves; only their turns wake ([`wake`]). `watch` subscribes the waiter
//! in a [`ChangeHub`] first, then makes sure the pub/sub connection has SUBSCRIBEd to the
//! channel, and returns only once the server has confirmed that: a release published after
//! `watch` returned reaches the waiter. When the pub/sub connection drops, every waiter is
//! woken (events may have been missed); their next `watch` opens a new one. Channels nobody
//! waits on any more are unsubscribed from, in batches, as new ones are added.

use lock_core::Operation;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use lock_core::Error;
use lock_core::raw::{ChangeFuture, ChangeHub};
use redis::aio::PubSubSink;
use tokio::task::AbortHandle;

use crate::connection::{Endpoint, SetOnDrop};
use crate::errors;

/// Below this many subscribed channels, none is unsubscribed from.
const MIN_SWEEP: usize = 32;

/// One handle's waiters and its pub/sub connection.
pub(crate) struct Watcher {
    hub: Arc<ChangeHub>,
    state: tokio::sync::Mutex<State>,
    /// Failed attempts to open the pub/sub connection so far.
    open_failures: AtomicU64,
}

#[derive(Default)]
struct State {
    subscriber: Option<Subscriber>,
    /// Channels the server has confirmed on the current connection.
    channels: HashSet<String>,
    /// How many channels there were after the last sweep.
    swept_at: usize,
}

struct Subscriber {
    sink: PubSubSink,
    closed: Arc<AtomicBool>,
    reader: AbortHandle,
}

impl Subscriber {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Watcher {
    pub(crate) fn new() -> Self {
        Self {
            hub: Arc::new(ChangeHub::default()),
            state: tokio::sync::Mutex::new(State::default()),
            open_failures: AtomicU64::new(0),
        }
    }

    /// A future that completes at the next release on `channel` that names `owner` among the
    /// waiters it serves (or names no one: see [`wake`]), after this returns; `None` when no
    /// pub/sub connection can be had (the waiter then polls).
    pub(crate) async fn watch_turn(
        &self,
        endpoint: &Endpoint,
        channel: &str,
        owner: &str,
    ) -> Option<ChangeFuture> {
        let change = self.hub.subscribe_turn(channel, owner);
        self.confirmed(endpoint, channel, change).await
    }

    /// A future that completes at the next release on `channel` after this returns; `None`
    /// when no pub/sub connection can be had (the waiter then polls).
    pub(crate) async fn watch(&self, endpoint: &Endpoint, channel: &str) -> Option<ChangeFuture> {
        let change = self.hub.subscribe(channel);
        self.confirmed(endpoint, channel, change).await
    }

    /// `change`, subscribed in the hub before the channel is, once the server has confirmed
    /// the channel; `None` when it cannot be.
    async fn confirmed(
        &self,
        endpoint: &Endpoint,
        channel: &str,
        change: ChangeFuture,
    ) -> Option<ChangeFuture> {
        match self.subscribe(endpoint, channel).await {
            Ok(()) => Some(change),
            Err(e) => {
                tracing::debug!(channel, error = %e, "no pub/sub: waiters poll");
                None
            }
        }
    }

    async fn subscribe(&self, endpoint: &Endpoint, channel: &str) -> Result<(), Error> {
        let failures = self.open_failures.load(Ordering::SeqCst);
        let mut state = self.state.lock().await;
        if !state.subscriber.as_ref().is_some_and(Subscriber::is_open) {
            state.subscriber = None;
            state.channels.clear();
            state.swept_at = 0;
            if self.open_failures.load(Ordering::SeqCst) != failures {
                // Another waiter just tried while this one waited: do not make every waiter
                // wait out a connect timeout in turn.
                let message = "no pub/sub connection: the last attempt failed";
                return Err(Error::unreachable(
                    errors::BACKEND,
                    Operation::Watch,
                    message,
                    None,
                ));
            }
            match self.open(endpoint).await {
                Ok(subscriber) => state.subscriber = Some(subscriber),
                Err(e) => {
                    self.open_failures.fetch_add(1, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
        if state.channels.contains(channel) {
            return Ok(());
        }
        let what = Operation::Watch;
        let limit = endpoint.response_timeout;
        let subscriber = state.subscriber.as_mut().expect("opened above");
        let confirmed = tokio::time::timeout(limit, subscriber.sink.subscribe(channel)).await;
        match confirmed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // A refusal (an ACL without channels, say) leaves the connection usable; a
                // connection error does not.
                if e.is_io_error() || e.is_unrecoverable_error() {
                    subscriber.closed.store(true, Ordering::SeqCst);
                }
                return Err(errors::from_redis(what, &endpoint.shown, e));
            }
            Err(_) => {
                subscriber.closed.store(true, Ordering::SeqCst);
                return Err(errors::timed_out(what, &endpoint.shown, limit));
            }
        }
        state.channels.insert(channel.to_owned());
        if state.channels.len() >= 2 * state.swept_at.max(MIN_SWEEP) {
            self.sweep(&mut state, endpoint).await;
        }
        Ok(())
    }

    /// Unsubscribes from the channels that nobody waits on.
    async fn sweep(&self, state: &mut State, endpoint: &Endpoint) {
        let idle: Vec<String> = state
            .channels
            .iter()
            .filter(|c| !self.hub.is_watched(c))
            .cloned()
            .collect();
        if !idle.is_empty() {
            let subscriber = state.subscriber.as_mut().expect("subscribed");
            let limit = endpoint.response_timeout;
            match tokio::time::timeout(limit, subscriber.sink.unsubscribe(&idle)).await {
                Ok(Ok(())) => {
                    for c in &idle {
                        state.channels.remove(c);
                    }
                }
                _ => subscriber.closed.store(true, Ordering::SeqCst),
            }
        }
        state.swept_at = state.channels.len();
    }

    async fn open(&self, endpoint: &Endpoint) -> Result<Subscriber, Error> {
        let (sink, mut messages) = endpoint.open_pubsub().await?.split();
        let closed = Arc::new(AtomicBool::new(false));
        let flag = SetOnDrop(closed.clone());
        let hub: Weak<ChangeHub> = Arc::downgrade(&self.hub);
        let reader = tokio::spawn(async move {
            let flag = flag;
            while let Some(message) = messages.next().await {
                let Some(hub) = hub.upgrade() else { return };
                wake(
                    &hub,
                    message.get_channel_name(),
                    message.get_payload_bytes(),
                );
            }
            // The connection is gone: mark it, then wake everyone, since a release may have
            // been published while nobody listened. They watch again on a new connection.
            drop(flag);
            if let Some(hub) = hub.upgrade() {
                hub.notify_all();
            }
        })
        .abort_handle();
        Ok(Subscriber {
            sink,
            closed,
            reader,
        })
    }
}

/// Wakes the waiters of `channel` that a message with `payload` is for. A release or a place
/// left publishes a newline and the owners it serves, each after a newline: every plain
/// watcher wakes, and of the waiters in line only those owners (none, for a lone newline).
/// Anything else (a force release; a release by an earlier version of this crate, which
/// publishes its token; owners that are not UTF-8) wakes every waiter.
fn wake(hub: &ChangeHub, channel: &str, payload: &[u8]) {
    match payload
        .strip_prefix(b"\n")
        .and_then(|owners| std::str::from_utf8(owners).ok())
    {
        Some(owners) => hub.notify_turns(channel, owners.split('\n').filter(|o| !o.is_empty())),
        None => hub.notify(channel),
    }
}

//! [`ChangeHub`]: per-name wake-ups, a building block for a backend's [`Lock::watch`](crate::Lock::watch).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::raw::ChangeFuture;

/// Fans change events out to the waiters of each key, without losing one that happens between
/// [`subscribe`](Self::subscribe) and awaiting the future.
///
/// A backend keeps one hub per handle, subscribes waiters by key (its name for the lock), and
/// calls [`notify`](Self::notify) when its event source (pub/sub, NOTIFY, a file watcher) says
/// a key changed, or [`notify_all`](Self::notify_all) when events may have been missed (a
/// reconnect). Subscribers nobody waits on any more are dropped as the hub goes.
///
/// Waiters in a line subscribe for their turn ([`subscribe_turn`](Self::subscribe_turn)), and a
/// backend that knows who stands first when a name opens calls
/// [`notify_turn`](Self::notify_turn): only that owner's turn wakes (with the plain
/// subscribers), not every waiter of the name to find it is not theirs.
#[derive(Debug, Default)]
pub struct ChangeHub {
    inner: Mutex<Subscribers>,
}

/// The hub's subscribers: per key, and per key and owner for turns.
#[derive(Debug, Default)]
struct Subscribers {
    senders: HashMap<String, watch::Sender<()>>,
    /// Turn subscriptions: per key, per owner.
    turns: HashMap<String, HashMap<String, watch::Sender<()>>>,
    pruned_at_len: usize,
}

impl Subscribers {
    /// Amortised clean-up: drops keys without subscribers whenever the maps doubled.
    fn prune(&mut self) {
        if self.senders.len() + self.turns.len() > 2 * self.pruned_at_len.max(32) {
            self.senders.retain(|_, tx| tx.receiver_count() > 0);
            self.turns.retain(|_, owners| {
                owners.retain(|_, tx| tx.receiver_count() > 0);
                !owners.is_empty()
            });
            self.pruned_at_len = self.senders.len() + self.turns.len();
        }
    }
}

fn waiting(mut rx: watch::Receiver<()>) -> ChangeFuture {
    Box::pin(async move {
        // An error means the sender went away, which is a change too.
        let _ = rx.changed().await;
    })
}

/// Wakes the receivers of `tx`; says whether any are left to keep it for.
fn wake(tx: &watch::Sender<()>) -> bool {
    tx.send_replace(());
    tx.receiver_count() > 0
}

impl ChangeHub {
    /// A future that completes at the first `notify(key)` or `notify_all()` after this call.
    pub fn subscribe(&self, key: &str) -> ChangeFuture {
        let mut keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        keys.prune();
        let rx = keys
            .senders
            .entry(key.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        waiting(rx)
    }

    /// A future that completes at the first change of `key` after this call that may be
    /// `owner`'s turn: a [`notify_turn`](Self::notify_turn) naming `owner` first or naming no
    /// one, a [`notify`](Self::notify), a [`notify_all`](Self::notify_all).
    pub fn subscribe_turn(&self, key: &str, owner: &str) -> ChangeFuture {
        let mut keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        keys.prune();
        let rx = keys
            .turns
            .entry(key.to_owned())
            .or_default()
            .entry(owner.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        waiting(rx)
    }

    /// Wakes every waiter of `key`.
    pub fn notify(&self, key: &str) {
        let _ = self.notify_turn(key, None);
    }

    /// Wakes the plain waiters of `key` and, of those waiting for their turn, only `first`'s
    /// (the owner standing first in the key's line), or all of them when `first` is `None`
    /// (no line, or one that could not be read). Says whether `first`'s turn had a waiter
    /// here to wake (`false` for `None`): a backend that must know whom it woke (to let that
    /// waiter's next try pass a misplaced turn on) need not keep track of everyone named.
    pub fn notify_turn(&self, key: &str, first: Option<&str>) -> bool {
        let mut keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = keys.senders.get(key)
            && !wake(tx)
        {
            keys.senders.remove(key);
        }
        let mut woke_first = false;
        if let Some(owners) = keys.turns.get_mut(key) {
            match first {
                Some(first) => {
                    if let Some(tx) = owners.get(first) {
                        woke_first = tx.receiver_count() > 0;
                        if !wake(tx) {
                            owners.remove(first);
                        }
                    }
                }
                None => owners.retain(|_, tx| wake(tx)),
            }
            if owners.is_empty() {
                keys.turns.remove(key);
            }
        }
        woke_first
    }

    /// Wakes the plain waiters of `key` and, of those waiting for their turn, only the owners
    /// in `served`: the waiters at the front of the line that the freed room can serve (see
    /// [`servable`](crate::raw::servable)). An empty `served` wakes no turn.
    pub fn notify_turns<'a>(&self, key: &str, served: impl IntoIterator<Item = &'a str>) {
        let mut keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = keys.senders.get(key)
            && !wake(tx)
        {
            keys.senders.remove(key);
        }
        if let Some(owners) = keys.turns.get_mut(key) {
            for owner in served {
                if let Some(tx) = owners.get(owner)
                    && !wake(tx)
                {
                    owners.remove(owner);
                }
            }
            if owners.is_empty() {
                keys.turns.remove(key);
            }
        }
    }

    /// Wakes every waiter of every key.
    pub fn notify_all(&self) {
        let keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for tx in keys.senders.values() {
            tx.send_replace(());
        }
        for tx in keys.turns.values().flat_map(HashMap::values) {
            tx.send_replace(());
        }
    }

    /// Whether anyone waits on `key` now (a backend may unsubscribe from its source when not).
    pub fn is_watched(&self, key: &str) -> bool {
        let keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        keys.senders
            .get(key)
            .is_some_and(|tx| tx.receiver_count() > 0)
            || keys
                .turns
                .get(key)
                .is_some_and(|owners| owners.values().any(|tx| tx.receiver_count() > 0))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_notify_after_subscribe_is_never_lost() {
        let hub = ChangeHub::default();
        let fut = hub.subscribe("a");
        hub.notify("a");
        tokio::time::timeout(Duration::from_secs(5), fut)
            .await
            .expect("woken");
    }

    #[tokio::test]
    async fn other_keys_do_not_wake() {
        let hub = ChangeHub::default();
        let mut fut = hub.subscribe("a");
        hub.notify("b");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut fut)
                .await
                .is_err()
        );
        assert!(hub.is_watched("a"));
    }

    #[tokio::test]
    async fn dropped_waiters_are_forgotten() {
        let hub = ChangeHub::default();
        drop(hub.subscribe("a"));
        drop(hub.subscribe_turn("a", "x"));
        assert!(!hub.is_watched("a"));
        hub.notify("a");
        let keys = hub.inner.lock().unwrap();
        assert!(keys.senders.is_empty() && keys.turns.is_empty());
    }

    /// Who wakes when a key's line is first `first`: (plain, turn of x, turn of y).
    #[tokio::test]
    async fn a_turn_wakes_only_its_owner_and_the_plain_waiters() {
        let cases: [(Option<&str>, [bool; 3]); 3] = [
            (Some("x"), [true, true, false]),
            (Some("z"), [true, false, false]),
            (None, [true, true, true]),
        ];
        for (first, want) in cases {
            let hub = ChangeHub::default();
            let mut futs = [
                hub.subscribe("a"),
                hub.subscribe_turn("a", "x"),
                hub.subscribe_turn("a", "y"),
            ];
            let mut other = hub.subscribe_turn("b", "x");
            let woke_first = hub.notify_turn("a", first);
            assert_eq!(woke_first, first == Some("x"), "first {first:?}");
            for (fut, want) in futs.iter_mut().zip(want) {
                let woken = tokio::time::timeout(Duration::from_millis(20), fut)
                    .await
                    .is_ok();
                assert_eq!(woken, want, "first {first:?}");
            }
            let woken = tokio::time::timeout(Duration::from_millis(20), &mut other).await;
            assert!(woken.is_err(), "another key");
            // A completed future has let its subscription go.
            assert_eq!(hub.is_watched("a"), want.contains(&false));
        }
        let hub = ChangeHub::default();
        let turn = hub.subscribe_turn("a", "y");
        hub.notify_all();
        tokio::time::timeout(Duration::from_secs(5), turn)
            .await
            .expect("notify_all wakes turns too");
    }
}

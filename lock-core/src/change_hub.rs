//! [`ChangeHub`]: per-name wake-ups, a building block for a backend's [`Lock::watch`](crate::Lock::watch).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::ChangeFuture;

/// Fans change events out to the waiters of each key, without losing one that happens between
/// [`subscribe`](Self::subscribe) and awaiting the future.
///
/// A backend keeps one hub per handle, subscribes waiters by key (its name for the lock), and
/// calls [`notify`](Self::notify) when its event source (pub/sub, NOTIFY, a file watcher) says
/// a key changed, or [`notify_all`](Self::notify_all) when events may have been missed (a
/// reconnect). Keys nobody waits on any more are dropped as the hub goes.
#[derive(Debug, Default)]
pub struct ChangeHub {
    inner: Mutex<Keys>,
}

#[derive(Debug, Default)]
struct Keys {
    senders: HashMap<String, watch::Sender<()>>,
    pruned_at_len: usize,
}

impl ChangeHub {
    /// A future that completes at the first `notify(key)` or `notify_all()` after this call.
    pub fn subscribe(&self, key: &str) -> ChangeFuture {
        let mut keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Amortised clean-up: drop keys without waiters whenever the map doubled.
        if keys.senders.len() > 2 * keys.pruned_at_len.max(32) {
            keys.senders.retain(|_, tx| tx.receiver_count() > 0);
            keys.pruned_at_len = keys.senders.len();
        }
        let mut rx = keys
            .senders
            .entry(key.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        Box::pin(async move {
            // An error means the sender went away, which is a change too.
            let _ = rx.changed().await;
        })
    }

    /// Wakes every waiter of `key`.
    pub fn notify(&self, key: &str) {
        let mut keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = keys.senders.get(key) {
            tx.send_replace(());
            if tx.receiver_count() == 0 {
                keys.senders.remove(key);
            }
        }
    }

    /// Wakes every waiter of every key.
    pub fn notify_all(&self) {
        let keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for tx in keys.senders.values() {
            tx.send_replace(());
        }
    }

    /// Whether anyone waits on `key` now (a backend may unsubscribe from its source when not).
    pub fn is_watched(&self, key: &str) -> bool {
        let keys = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        keys.senders
            .get(key)
            .is_some_and(|tx| tx.receiver_count() > 0)
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
        assert!(!hub.is_watched("a"));
        hub.notify("a");
        assert!(hub.inner.lock().unwrap().senders.is_empty());
    }
}

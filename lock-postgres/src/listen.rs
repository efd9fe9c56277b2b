//! Wake-ups: one LISTEN connection per handle, opened on the first watch, feeding a
//! [`ChangeHub`] with the names that releases NOTIFY (and the owners at the front of the line
//! that the freed room serves, when any stand there).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lock_core::Operation;
use lock_core::raw::{ChangeFuture, ChangeHub};
use lock_core::{Error, LockName, OwnerId};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::config::Config;
use crate::db::pool_options;
use crate::errors;
use crate::shared::Pools;

/// The longest pause between two attempts to get the LISTEN connection back.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// LISTEN on the table's channel, for one handle.
#[derive(Debug)]
pub(crate) struct Notifier {
    config: Config,
    channel: String,
    /// Where the LISTEN connection comes from (one connection, kept while the handle lives).
    pool: PgPool,
    hub: Arc<ChangeHub>,
    named: Arc<Named>,
    task: OnceCell<JoinHandle<()>>,
}

/// The turns of this handle's waiters that a NOTIFY named first in line, by name and owner,
/// until each owner's next try takes its mark ([`Notifier::take_named`]).
#[derive(Debug, Default)]
struct Named(Mutex<HashSet<(String, String)>>);

impl Named {
    /// More marks than this are dropped all at once (a waiter woken that never tried again:
    /// its acquisition dropped). A mark lost costs its owner no more than a missed pass
    /// (below), which the owners behind make up for within 200 ms.
    const MAX: usize = 1024;

    /// Wakes `owner`'s turn in `name`'s line with `wake`, and marks it when that woke a
    /// waiter of this handle. Marked under the lock that [`take`](Self::take) takes, so that
    /// the try the wake-up prompts finds the mark.
    fn wake_and_mark(&self, name: &str, owner: &str, wake: impl FnOnce() -> bool) {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if wake() {
            if marks.len() >= Self::MAX {
                marks.clear();
            }
            marks.insert((name.to_owned(), owner.to_owned()));
        }
    }

    fn take(&self, name: &str, owner: &str) -> bool {
        let mut marks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        marks.remove(&(name.to_owned(), owner.to_owned()))
    }
}

impl Notifier {
    /// LISTEN on `channel`, on a connection of its own or one kept from the caller's pool.
    pub(crate) fn new(config: &Config, channel: String, pools: &Pools) -> Self {
        let pool = match pools {
            Pools::Own => pool_options(config, 1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(config.connect_options()),
            Pools::Given(pool) => pool.clone(),
        };
        Self {
            config: config.clone(),
            channel,
            pool,
            hub: Arc::new(ChangeHub::default()),
            named: Arc::default(),
            task: OnceCell::new(),
        }
    }

    /// A future that completes at the first NOTIFY for `name` after this call, or when the
    /// LISTEN connection was lost and is back (a release may have gone unseen meanwhile).
    /// `None` when LISTEN is off (`listen=false`, PgBouncer).
    ///
    /// The first call opens the LISTEN connection and returns only once LISTEN is active, so
    /// a release made after it returns is never missed.
    pub(crate) async fn watch(&self, name: &LockName) -> Result<Option<ChangeFuture>, Error> {
        self.listening(|hub| hub.subscribe(name.as_str())).await
    }

    /// As [`watch`](Self::watch), for `owner` standing in `name`'s line: a release wakes it
    /// only when the NOTIFY names it first in line, or names no one.
    pub(crate) async fn watch_turn(
        &self,
        name: &LockName,
        owner: &OwnerId,
    ) -> Result<Option<ChangeFuture>, Error> {
        self.listening(|hub| hub.subscribe_turn(name.as_str(), owner.as_str()))
            .await
    }

    /// Whether a NOTIFY named `owner` first in `name`'s line since its last try (and forgets
    /// it): a waiter woken for its turn that then finds another's place ahead passes the turn
    /// on (see `Statements::in_line`).
    pub(crate) fn take_named(&self, name: &LockName, owner: &OwnerId) -> bool {
        self.named.take(name.as_str(), owner.as_str())
    }

    /// `subscribe`'s future, once LISTEN is active (subscribed first, so that nothing between
    /// is missed); `None` when LISTEN is off.
    async fn listening(
        &self,
        subscribe: impl FnOnce(&ChangeHub) -> ChangeFuture,
    ) -> Result<Option<ChangeFuture>, Error> {
        if !self.config.listen() {
            return Ok(None);
        }
        let change = subscribe(&self.hub);
        self.task
            .get_or_try_init(|| async {
                let listener = listen(&self.pool, &self.channel, &self.config).await?;
                let task = run(
                    listener,
                    self.hub.clone(),
                    self.named.clone(),
                    self.pool.clone(),
                    self.channel.clone(),
                    self.config.clone(),
                );
                Ok::<_, Error>(tokio::spawn(task))
            })
            .await?;
        Ok(Some(change))
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// A listener on `channel`, within the connect timeout.
async fn listen(pool: &PgPool, channel: &str, config: &Config) -> Result<PgListener, Error> {
    let limit = config.connect_timeout();
    let attempt = async {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.ignore_pool_close_event(true);
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match timeout(limit, attempt).await {
        Ok(Ok(listener)) => Ok(listener),
        Ok(Err(e)) => Err(errors::map(config, Operation::Watch, e)),
        Err(_) => Err(errors::timed_out(config, Operation::Watch, limit)),
    }
}

/// Wakes the waiters a NOTIFY payload names: `name` (every waiter of it), or `name` and the
/// owners at the front of its line that the freed room serves, each after a newline (then, of
/// the waiters in line, only those owners' turns, each marked named if it waits here; none
/// for `name` and a lone newline).
fn on_notification(hub: &ChangeHub, named: &Named, payload: &str) {
    match payload.split_once('\n') {
        Some((name, "")) => hub.notify_turns(name, []),
        Some((name, owners)) => {
            for owner in owners.split('\n') {
                named.wake_and_mark(name, owner, || hub.notify_turn(name, Some(owner)));
            }
        }
        None => hub.notify(payload),
    }
}

/// Hands each notification to the hub; after a lost connection, listens again and wakes
/// every waiter, since releases may have passed unseen.
async fn run(
    mut listener: PgListener,
    hub: Arc<ChangeHub>,
    named: Arc<Named>,
    pool: PgPool,
    channel: String,
    config: Config,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => on_notification(&hub, &named, notification.payload()),
            // The driver lost the connection and has listened again on a new one.
            Ok(None) => hub.notify_all(),
            Err(e) => {
                tracing::debug!(error = %e, "the LISTEN connection failed; opening a new one");
                drop(listener);
                let mut backoff = Duration::from_millis(50);
                listener = loop {
                    tokio::time::sleep(backoff).await;
                    match listen(&pool, &channel, &config).await {
                        Ok(listener) => break listener,
                        Err(e) => {
                            tracing::debug!(error = %e, "LISTEN again failed; retrying");
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                };
                hub.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Who a payload wakes: (a plain waiter of `job`, the turn of `b`, the turn of `c`).
    #[tokio::test]
    async fn a_payload_wakes_its_name_and_only_the_turn_it_names() {
        let cases: [(&str, [bool; 3]); 9] = [
            ("job", [true, true, true]),       // no one in line: every turn
            ("job\nb", [true, true, false]),   // b first
            ("job\nb\nc", [true, true, true]), // b and c served
            ("job\nx\nc", [true, false, true]),
            ("job\n", [true, false, false]),  // a line, no one served
            ("job\nx", [true, false, false]), // someone else first
            ("other\nb", [false, false, false]),
            ("job b", [false, false, false]), // a name with a space, not a turn
            ("jo", [false, false, false]),
        ];
        for (payload, want) in cases {
            let (hub, named) = (ChangeHub::default(), Named::default());
            let futs = [
                hub.subscribe("job"),
                hub.subscribe_turn("job", "b"),
                hub.subscribe_turn("job", "c"),
            ];
            on_notification(&hub, &named, payload);
            let names_b =
                payload.starts_with("job\n") && payload[4..].split('\n').any(|o| o == "b");
            assert_eq!(named.take("job", "b"), names_b, "{payload:?}");
            assert!(!named.take("job", "b"), "a mark is taken once");
            assert!(
                !named.take("job", "x"),
                "no mark for a turn no one here waits on"
            );
            for (fut, want) in futs.into_iter().zip(want) {
                // A zero timeout still polls the future once: ready only when woken.
                let woken = tokio::time::timeout(Duration::ZERO, fut).await.is_ok();
                assert_eq!(woken, want, "{payload:?}");
            }
        }
    }
}

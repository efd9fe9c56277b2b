//! Wake-ups: one LISTEN connection per handle, opened on the first watch, feeding a
//! [`ChangeHub`] with the names that releases NOTIFY.

use std::sync::Arc;
use std::time::Duration;

use lock_core::{ChangeFuture, ChangeHub, Error, LockName};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::config::Config;
use crate::db::pool_options;
use crate::errors;

/// The longest pause between two attempts to get the LISTEN connection back.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// LISTEN on the table's channel, for one handle.
#[derive(Debug)]
pub(crate) struct Notifier {
    config: Config,
    channel: String,
    /// Where the LISTEN connection comes from (one connection, kept).
    pool: PgPool,
    hub: Arc<ChangeHub>,
    task: OnceCell<JoinHandle<()>>,
}

impl Notifier {
    pub(crate) fn new(config: &Config, channel: String) -> Self {
        let pool = pool_options(config, 1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(config.connect_options());
        Self {
            config: config.clone(),
            channel,
            pool,
            hub: Arc::new(ChangeHub::default()),
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
        if !self.config.listen() {
            return Ok(None);
        }
        let change = self.hub.subscribe(name.as_str());
        self.task
            .get_or_try_init(|| async {
                let listener = listen(&self.pool, &self.channel, &self.config).await?;
                let task = run(
                    listener,
                    self.hub.clone(),
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
        Ok(Err(e)) => Err(errors::map(config, "LISTEN for releases", e)),
        Err(_) => Err(errors::timed_out(config, "LISTEN for releases", limit)),
    }
}

/// Hands each notification to the hub; after a lost connection, listens again and wakes
/// every waiter, since releases may have passed unseen.
async fn run(
    mut listener: PgListener,
    hub: Arc<ChangeHub>,
    pool: PgPool,
    channel: String,
    config: Config,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => hub.notify(notification.payload()),
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

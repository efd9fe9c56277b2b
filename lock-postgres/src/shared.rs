//! What both kinds of lock share: the configuration, the statement pool, the SQL, the NOTIFY
//! channel and the LISTEN connection; and opening them, on pools of the crate's own or on a
//! pool the caller brings.

use lock_core::Operation;
use lock_core::raw::{self, config_error};
use lock_core::{Error, LockName};
use sqlx::Connection;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, Postgres};
use tokio::time::timeout;

use crate::config::{Config, Mode};
use crate::db::{self, Db};
use crate::errors;
use crate::key;
use crate::listen::Notifier;
use crate::schema;
use crate::sql::Statements;

/// Where a handle's connections come from.
#[derive(Clone, Debug)]
pub(crate) enum Pools {
    /// Pools of its own, made from the configuration's connect options.
    Own,
    /// The caller's pool: statements, the LISTEN connection and, in session mode, the
    /// connections that hold locks all come from it.
    Given(PgPool),
}

/// The parts of a handle that every lock of it uses.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) db: Db,
    pub(crate) sql: Statements,
    pub(crate) channel: String,
    pub(crate) notifier: Notifier,
    pub(crate) pools: Pools,
}

impl Shared {
    /// Checks that `config` is for `mode`, reaches the server, makes sure the table is there,
    /// and sets up the handle's pools.
    pub(crate) async fn open(
        mut config: Config,
        mode: Mode,
        pools: Pools,
        kind: &str,
    ) -> Result<Self, Error> {
        if config.mode() != mode {
            return Err(config_error(format!(
                "a {kind} is for mode={}, and this configuration says mode={}: use \
                 lock_postgres::connect, which picks the lock the URL's mode names",
                mode.as_str(),
                config.mode().as_str()
            )));
        }
        if let Pools::Given(pool) = &pools {
            config.connect = (*pool.connect_options()).clone();
        }
        let limit = config.connect_timeout();
        match &pools {
            Pools::Own => {
                // One connection of its own first: its error says what is wrong, where a pool
                // would only say that it timed out.
                let mut conn =
                    match timeout(limit, PgConnection::connect_with(&config.connect_options()))
                        .await
                    {
                        Ok(Ok(conn)) => conn,
                        Ok(Err(e)) => return Err(errors::map_connect(&config, e)),
                        Err(_) => {
                            return Err(errors::timed_out(&config, Operation::Connect, limit));
                        }
                    };
                ensure(&mut conn, &config).await?;
                let _ = timeout(limit, conn.close()).await;
            }
            Pools::Given(pool) => {
                let mut conn = db::acquire(pool, &config, Operation::Connect).await?;
                check_durable(&mut conn, &config).await?;
                ensure(&mut conn, &config).await?;
            }
        }
        let channel = key::channel(config.schema(), config.table());
        Ok(Self {
            db: match &pools {
                Pools::Own => Db::new(&config, config.pool_max()),
                Pools::Given(pool) => Db::with_pool(&config, pool.clone()),
            },
            sql: Statements::new(&config.quoted_table(), &config.quoted_line_table()),
            notifier: Notifier::new(&config, channel.clone(), &pools),
            channel,
            pools,
            config,
        })
    }

    pub(crate) fn advisory_key(&self, name: &LockName) -> i64 {
        key::advisory_key(self.config.schema(), self.config.table(), name.as_str())
    }

    /// The error for a row this crate did not write.
    pub(crate) fn corrupt(&self, name: &LockName, detail: String) -> Error {
        let table = self.config.qualified_table();
        raw::corrupt(
            name,
            format_args!("table {table} at {}", self.config.target()),
            detail,
        )
    }
}

/// Makes sure the table is there, within the connect timeout.
async fn ensure(conn: &mut PgConnection, config: &Config) -> Result<(), Error> {
    let limit = config.connect_timeout();
    match timeout(limit, schema::ensure(conn, config)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(db::ensure_error(config, e)),
        Err(_) => Err(errors::statement_timed_out(
            config,
            Operation::Connect,
            limit,
        )),
    }
}

/// Refuses a caller's pool whose connections do not wait for a commit to reach the disk: a
/// grant lost in a crash could hand its token out twice. (Through PgBouncer the server's own
/// setting applies, as with the crate's own pools.)
async fn check_durable(conn: &mut PoolConnection<Postgres>, config: &Config) -> Result<(), Error> {
    if config.pgbouncer() {
        return Ok(());
    }
    let limit = config.connect_timeout();
    let query = sqlx::query_scalar::<_, String>("SHOW synchronous_commit");
    let setting = match timeout(limit, query.fetch_one(&mut **conn)).await {
        Ok(Ok(setting)) => setting,
        Ok(Err(e)) => return Err(errors::map(config, Operation::Connect, e)),
        Err(_) => {
            return Err(errors::statement_timed_out(
                config,
                Operation::Connect,
                limit,
            ));
        }
    };
    if setting == "off" {
        return Err(config_error(
            "the pool's connections run with synchronous_commit=off, where a grant could be \
             lost in a crash and its fencing token handed out again: set it to on in the \
             pool's connect options (options=-c synchronous_commit=on)",
        ));
    }
    Ok(())
}

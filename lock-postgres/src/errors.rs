//! Driver errors as the lock's [`Error`]: unreachable, refused, or a server error, each
//! naming the server and never the password.

use std::time::Duration;

use lock_core::{Error, InvalidInput};

use crate::config::Config;

/// SQLSTATE of a table that does not exist.
pub(crate) const UNDEFINED_TABLE: &str = "42P01";

/// The SQLSTATE of a server error, if it is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// True when the connection an error came from is gone or unusable: it must not be reused,
/// and the server did not complete the statement (the transaction was not committed, bar a
/// crash in the instant between commit and reply).
pub(crate) fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => sqlstate(e).is_some_and(|code| {
            // connection_exception, admin_shutdown, crash_shutdown, cannot_connect_now
            code.starts_with("08") || matches!(code.as_str(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// A driver error met while talking to the server (`doing` says what, e.g. "try acquire").
pub(crate) fn map(config: &Config, doing: &str, e: sqlx::Error) -> Error {
    let target = config.target();
    let detail = detail(config, &e);
    let code = sqlstate(&e);
    match &e {
        sqlx::Error::Configuration(_) => {
            InvalidInput::Config(config.scrub(format!("cannot use the Postgres URL: {e}"))).into()
        }
        sqlx::Error::PoolTimedOut => Error::Unreachable {
            message: format!(
                "{doing}: no connection to Postgres at {target} within {:?} (connect_timeout): \
                 the server is down or unreachable, or all {} connections of this handle are busy",
                config.connect_timeout(),
                config.pool_max()
            ),
            source: Some(e.into()),
        },
        _ if connection_lost(&e) || matches!(e, sqlx::Error::PoolClosed) => Error::unreachable(
            format!("{doing}: lost the connection to Postgres at {target}: {detail}"),
            e,
        ),
        _ => match code.as_deref() {
            Some("28P01" | "28000") => Error::backend(
                format!("{doing}: Postgres at {target} refused the login: {detail}"),
                e,
            ),
            Some("3D000") => Error::backend(
                format!("{doing}: Postgres at {target} has no such database: {detail}"),
                e,
            ),
            Some("53300") => Error::unreachable(
                format!("{doing}: Postgres at {target} has no connection slot free: {detail}"),
                e,
            ),
            Some("26000" | "42P05") => Error::backend(
                format!(
                    "{doing}: Postgres at {target} lost or mixed up prepared statements ({detail}); \
                     is a transaction-pooling PgBouncer in between? Then add pgbouncer=true to the URL"
                ),
                e,
            ),
            _ => Error::backend(format!("{doing}: Postgres at {target}: {detail}"), e),
        },
    }
}

/// What connecting failed with, in the words a person setting up the URL needs.
pub(crate) fn map_connect(config: &Config, e: sqlx::Error) -> Error {
    let target = config.target();
    let detail = detail(config, &e);
    match &e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Error::unreachable(
                format!(
                    "cannot connect to Postgres at {target}: connection refused (is the server running on that port?)"
                ),
                e,
            )
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::unreachable(
                format!(
                    "the server at {target} closed the connection during the handshake: is it Postgres?"
                ),
                e,
            )
        }
        sqlx::Error::Protocol(_) => Error::unreachable(
            format!("the server at {target} does not speak the Postgres protocol: {detail}"),
            e,
        ),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Error::unreachable(
            format!("cannot connect to Postgres at {target}: {detail}"),
            e,
        ),
        _ => map(config, "connect", e),
    }
}

/// What the server or the driver said, without the password.
fn detail(config: &Config, e: &sqlx::Error) -> String {
    config.scrub(match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        _ => e.to_string(),
    })
}

/// A connection attempt that got no answer in time.
pub(crate) fn timed_out(config: &Config, doing: &str, after: Duration) -> Error {
    Error::Unreachable {
        message: format!(
            "{doing}: no answer from Postgres at {} within {after:?} (connect_timeout)",
            config.target()
        ),
        source: None,
    }
}

/// A statement that got no answer in time: it may or may not have taken effect.
pub(crate) fn statement_timed_out(config: &Config, doing: &str, after: Duration) -> Error {
    Error::Unreachable {
        message: format!(
            "{doing}: no answer from Postgres at {} within {after:?} (connect_timeout); \
             it may or may not have taken effect",
            config.target()
        ),
        source: None,
    }
}

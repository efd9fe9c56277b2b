//! Driver errors as the lock's [`Error`]: unreachable, refused, or a server error, each
//! naming the server and never the password.

use std::time::Duration;

use lock_core::raw::config_error;
use lock_core::{Error, Operation};

use crate::config::Config;

/// The backend's name in errors.
pub(crate) const BACKEND: &str = "Postgres";

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

/// A driver error met while talking to the server during `op` (e.g. "try acquire").
pub(crate) fn map(config: &Config, op: Operation, e: sqlx::Error) -> Error {
    let origin = config.origin();
    let detail = detail(config, &e);
    let code = sqlstate(&e);
    let what = match &e {
        sqlx::Error::Configuration(_) => {
            return config_error(config.scrub(format!("cannot use the Postgres URL: {e}")));
        }
        sqlx::Error::PoolTimedOut => {
            let what = format!(
                "gave no connection within {:?} (connect_timeout): the server is down or \
                 unreachable, or all {} connections of this handle are busy",
                config.connect_timeout(),
                config.pool_max()
            );
            return origin.unreachable(op, what, Some(e.into()));
        }
        _ if connection_lost(&e) || matches!(e, sqlx::Error::PoolClosed) => {
            let what = format!("lost the connection: {detail}");
            return origin.unreachable(op, what, Some(e.into()));
        }
        _ => match code.as_deref() {
            Some("28P01" | "28000") => format!("refused the login: {detail}"),
            Some("3D000") => format!("has no such database: {detail}"),
            Some("53300") => {
                let what = format!("has no connection slot free: {detail}");
                return origin.unreachable(op, what, Some(e.into()));
            }
            Some("26000" | "42P05") => format!(
                "lost or mixed up prepared statements ({detail}); is a transaction-pooling \
                 PgBouncer in between? Then add pgbouncer=true to the URL"
            ),
            _ => format!("answered with an error: {detail}"),
        },
    };
    origin.refused(op, what, Some(e.into()))
}

/// What connecting failed with, in the words a person setting up the URL needs.
pub(crate) fn map_connect(config: &Config, e: sqlx::Error) -> Error {
    let origin = config.origin();
    let detail = detail(config, &e);
    let what = match &e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "refused the connection (connection refused: is the server running on that port?)"
                .to_owned()
        }
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "closed the connection during the handshake: is it Postgres?".to_owned()
        }
        sqlx::Error::Protocol(_) => {
            format!("does not speak the Postgres protocol: is it Postgres? ({detail})")
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => format!("cannot be reached: {detail}"),
        _ => return map(config, Operation::Connect, e),
    };
    origin.unreachable(Operation::Connect, what, Some(e.into()))
}

/// What the server or the driver said, without the password.
fn detail(config: &Config, e: &sqlx::Error) -> String {
    config.scrub(match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        _ => e.to_string(),
    })
}

/// A connection attempt that got no answer in time.
pub(crate) fn timed_out(config: &Config, op: Operation, after: Duration) -> Error {
    let message = format!(
        "no answer from Postgres at {} within {after:?} (connect_timeout)",
        config.target()
    );
    Error::unreachable(BACKEND, op, message, None)
}

/// A statement that got no answer in time: it may or may not have taken effect.
pub(crate) fn statement_timed_out(config: &Config, op: Operation, after: Duration) -> Error {
    let message = format!(
        "no answer from Postgres at {} within {after:?} (connect_timeout); it may or may not \
         have taken effect",
        config.target()
    );
    Error::unreachable(BACKEND, op, message, None)
}

/// [`Error::Backend`] for `op`, saying `message`.
pub(crate) fn refused(op: Operation, message: String) -> Error {
    Error::backend(BACKEND, op, message, None)
}

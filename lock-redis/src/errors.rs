//! Turning the `redis` crate's errors into [`lock_core::Error`]s that say what happened in
//! words a user can act on, and never hold a password.

use std::time::Duration;

use lock_core::Error;
use redis::{ErrorKind, RedisError};

/// The error for `what` (an operation: "try acquire", "connect") failing at `endpoint`.
pub(crate) fn from_redis(what: &str, endpoint: &str, e: RedisError) -> Error {
    let code = e.code().unwrap_or("");
    if e.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
        return Error::backend(
            format!(
                "{what}: Redis at {endpoint} refused the credentials (authentication failed): \
                 check the user and password in the URL"
            ),
            e,
        );
    }
    if code == "NOAUTH" {
        return Error::backend(
            format!(
                "{what}: Redis at {endpoint} requires authentication and the URL gives no \
                 password: write redis://[user]:password@host"
            ),
            e,
        );
    }
    if code == "NOPERM" {
        return Error::backend(
            format!("{what}: Redis at {endpoint} denied it by its access rules (ACL): {e}"),
            e,
        );
    }
    if e.kind() == ErrorKind::Parse {
        return Error::backend(
            format!(
                "{what}: the server at {endpoint} does not speak the Redis protocol \
                 (is it a Redis server, and is TLS on where the URL says rediss://?)"
            ),
            e,
        );
    }
    if e.is_io_error() {
        let message = if e.is_timeout() {
            format!("{what}: Redis at {endpoint} did not answer in time")
        } else if e.is_connection_refusal() {
            format!("{what}: Redis at {endpoint} refused the connection (is it running?)")
        } else if e.is_connection_dropped() {
            format!("{what}: the connection to Redis at {endpoint} was lost")
        } else {
            format!("{what}: cannot reach Redis at {endpoint}: {e}")
        };
        return Error::unreachable(message, e);
    }
    Error::backend(
        format!("{what}: Redis at {endpoint} answered with an error: {e}"),
        e,
    )
}

/// The error for a connection's handshake (authentication, database, client name) failing:
/// as [`from_redis`], but a server that hangs up without answering is likely not Redis.
pub(crate) fn from_handshake(what: &str, endpoint: &str, e: RedisError) -> Error {
    if e.is_connection_dropped() {
        return Error::unreachable(
            format!(
                "{what}: the server at {endpoint} closed the connection without answering \
                 (is it a Redis server, and does it want TLS, rediss://?)"
            ),
            e,
        );
    }
    from_redis(what, endpoint, e)
}

/// The error for `what` not finishing within `limit`.
pub(crate) fn timed_out(what: &str, endpoint: &str, limit: Duration) -> Error {
    Error::Unreachable {
        message: format!("{what}: Redis at {endpoint} did not answer within {limit:?}"),
        source: None,
    }
}

/// The error for opening the TCP or TLS stream.
pub(crate) fn from_io(what: &str, endpoint: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as Io;
    let message = match e.kind() {
        Io::ConnectionRefused => {
            format!("{what}: Redis at {endpoint} refused the connection (is it running?)")
        }
        Io::InvalidData => format!("{what}: the TLS handshake with {endpoint} failed: {e}"),
        _ => format!("{what}: cannot reach Redis at {endpoint}: {e}"),
    };
    Error::unreachable(message, e)
}

/// The same error again, without its source, for a second caller to get.
pub(crate) fn duplicate(e: &Error) -> Error {
    match e {
        Error::Unreachable { message, .. } => Error::Unreachable {
            message: message.clone(),
            source: None,
        },
        Error::InvalidInput(input) => Error::InvalidInput(input.clone()),
        Error::Backend { message, .. } => Error::Backend {
            message: message.clone(),
            source: None,
        },
        other => Error::Backend {
            message: other.to_string(),
            source: None,
        },
    }
}

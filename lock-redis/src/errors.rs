//! Turning the `redis` crate's errors into [`lock_core::Error`]s that say what happened in
//! words a user can act on, and never hold a password.

use std::time::Duration;

use lock_core::raw::Origin;
use lock_core::{Error, Operation};
use redis::{ErrorKind, RedisError};

/// The backend's name in errors.
pub(crate) const BACKEND: &str = "Redis";

/// Redis at `endpoint`, as error messages name it.
fn origin(endpoint: &str) -> Origin {
    Origin::new(BACKEND, endpoint)
}

/// The error for `what` (an operation: "try acquire", "connect") failing at `endpoint`.
pub(crate) fn from_redis(what: Operation, endpoint: &str, e: RedisError) -> Error {
    let origin = origin(endpoint);
    let code = e.code().unwrap_or("");
    let refused = |words: String, e: RedisError| origin.refused(what, words, Some(e.into()));
    if e.kind() == ErrorKind::AuthenticationFailed || code == "WRONGPASS" {
        return refused(
            "refused the credentials (authentication failed): check the user and password in \
             the URL"
                .to_owned(),
            e,
        );
    }
    if code == "NOAUTH" {
        return refused(
            "requires authentication and the URL gives no password: write \
             redis://[user]:password@host"
                .to_owned(),
            e,
        );
    }
    if code == "NOPERM" {
        return refused(format!("denied it by its access rules (ACL): {e}"), e);
    }
    if e.kind() == ErrorKind::Parse {
        return refused(
            "does not speak the Redis protocol (is it a Redis server, and is TLS on where the \
             URL says rediss://?)"
                .to_owned(),
            e,
        );
    }
    if e.is_io_error() {
        let words = if e.is_timeout() {
            "did not answer in time".to_owned()
        } else if e.is_connection_refusal() {
            "refused the connection (is it running?)".to_owned()
        } else if e.is_connection_dropped() {
            "dropped the connection (it was lost)".to_owned()
        } else {
            format!("cannot be reached: {e}")
        };
        return origin.unreachable(what, words, Some(e.into()));
    }
    refused(format!("answered with an error: {e}"), e)
}

/// The error for a connection's handshake (authentication, database, client name) failing:
/// as [`from_redis`], but a server that hangs up without answering is likely not Redis.
pub(crate) fn from_handshake(what: Operation, endpoint: &str, e: RedisError) -> Error {
    if e.is_connection_dropped() {
        return origin(endpoint).unreachable(
            what,
            "closed the connection without answering (is it a Redis server, and does it want \
             TLS, rediss://?)",
            Some(e.into()),
        );
    }
    from_redis(what, endpoint, e)
}

/// The error for `what` not finishing within `limit`.
pub(crate) fn timed_out(what: Operation, endpoint: &str, limit: Duration) -> Error {
    origin(endpoint).timed_out(what, limit)
}

/// The error for opening the TCP or TLS stream.
pub(crate) fn from_io(what: Operation, endpoint: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as Io;
    let words = match e.kind() {
        Io::ConnectionRefused => "refused the connection (is it running?)".to_owned(),
        Io::InvalidData => format!("failed the TLS handshake: {e}"),
        _ => format!("cannot be reached: {e}"),
    };
    origin(endpoint).unreachable(what, words, Some(e.into()))
}

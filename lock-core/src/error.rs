//! [`Error`] and [`InvalidInput`].

use std::time::Duration;

/// The error type's source: any error that can cross threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a value was refused before anything was sent to a backend.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    /// A lock name with no bytes.
    #[error("lock name is empty")]
    EmptyName,
    /// A lock name longer than 255 bytes.
    #[error("lock name is {bytes} bytes long; the most is 255")]
    NameTooLong {
        /// Its length in bytes.
        bytes: usize,
    },
    /// A lock name with a control character (NUL, newline, DEL, …).
    #[error("lock name has control character U+{code:04X} at byte {at}")]
    NameControlChar {
        /// Byte offset of the character.
        at: usize,
        /// Its code point.
        code: u32,
    },
    /// An owner id that is empty, too long, or has a character outside the allowed set.
    #[error("owner id {owner:?} is not 1 to 128 characters of A-Z a-z 0-9 and -_.:@/+=")]
    BadOwner {
        /// The id as given.
        owner: String,
    },
    /// A ttl under 1 ms or over 365 days.
    #[error("ttl {given:?} is out of range: it must be from 1ms to 365 days")]
    TtlOutOfRange {
        /// The duration as given.
        given: Duration,
    },
    /// A negative ttl.
    #[error("ttl of {millis} ms is negative: it must be from 1ms to 365 days")]
    NegativeTtl {
        /// The value as given.
        millis: i64,
    },
    /// A renewal interval that is zero or not shorter than the ttl.
    #[error("renewal interval {every:?} must be above zero and below the ttl {ttl:?}")]
    RenewInterval {
        /// The interval as given.
        every: Duration,
        /// The lease's ttl.
        ttl: Duration,
    },
    /// A configuration value (URL, option) that cannot be used. The message never holds a
    /// password.
    #[error("{0}")]
    Config(String),
}

/// Everything that can go wrong, typed so that callers can tell bad input from a backend that
/// is down. No variant ever carries a password.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input was refused; nothing was sent and nothing changed.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// The backend could not be reached (connection refused, timed out, DNS): the operation
    /// may or may not have taken effect when the request had already left.
    #[error("backend unreachable: {message}")]
    Unreachable {
        /// What failed, without secrets.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend answered with an error (permission denied, disk full, a server error).
    #[error("backend error: {message}")]
    Backend {
        /// What failed, without secrets.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The state stored for a lock is not what this library writes (a foreign or garbled lock
    /// file, say). It was left as it is; a force release repairs it.
    #[error("corrupt lock state for {name:?} at {location}: {detail}")]
    Corrupt {
        /// The lock's name.
        name: String,
        /// Where the state lives (a path, a key, a table).
        location: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl Error {
    /// An [`Error::Unreachable`] with a source.
    pub fn unreachable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Unreachable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Backend`] with a source.
    pub fn backend(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// True for [`Error::InvalidInput`]: the caller must change its input; retrying is useless.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput(_))
    }
}

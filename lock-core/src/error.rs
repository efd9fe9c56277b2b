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
    /// A number of permits that is not a whole number from 1 to 10,000.
    #[error("permits {given:?} is not a whole number from 1 to 10000")]
    PermitsOutOfRange {
        /// The value as given.
        given: String,
    },
    /// A claim whose kind does not match the name's live leases: another number of permits,
    /// permits on a name held exclusively or shared, a shared or exclusive claim on a
    /// semaphore, or an owner asking again with another kind than the lease it holds.
    /// Nothing changed; the name's kind is free again once no lease on it is live.
    #[error("lock {name:?} is held {held_as}; a claim {} cannot join it (ask for the same kind, or wait until no lease is live)", asked_words(*.asked))]
    KindMismatch {
        /// The lock's name.
        name: String,
        /// How the name (or, for an owner asking again, its own lease) is held.
        held_as: crate::Kind,
        /// What the claim asked for.
        asked: crate::Kind,
    },
    /// A claim of a kind the backend does not offer (see
    /// [`Capabilities::permits`](crate::Capabilities::permits) and
    /// [`Capabilities::shared`](crate::Capabilities::shared)). Nothing was sent.
    #[error("this backend does not offer {} leases", .kind.as_str())]
    KindUnsupported {
        /// What the claim asked for.
        kind: crate::Kind,
    },
    /// A configuration value (URL, option) that cannot be used. The message never holds a
    /// password.
    #[error("{0}")]
    Config(String),
}

/// A claim's kind in the words of a mismatch: `for 1 permit (exclusive)`, `shared`.
fn asked_words(kind: crate::Kind) -> String {
    match kind.normalized() {
        crate::Kind::Exclusive => "for 1 permit (exclusive)".to_owned(),
        crate::Kind::Shared => "for a shared lease".to_owned(),
        crate::Kind::Permit(n) => format!("for a semaphore of {n} permits"),
    }
}

/// The [`Lock`](crate::Lock) operation an error happened in, as a field of
/// [`Error::Unreachable`] and [`Error::Backend`] (and the first words of their messages).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Opening the handle: connecting, checking the directory or the table.
    Connect,
    /// [`Lock::try_acquire`](crate::Lock::try_acquire).
    TryAcquire,
    /// [`Lock::try_acquire_in_line`](crate::Lock::try_acquire_in_line).
    TryAcquireInLine,
    /// [`Lock::leave_line`](crate::Lock::leave_line).
    LeaveLine,
    /// [`Lock::renew`](crate::Lock::renew).
    Renew,
    /// [`Lock::release`](crate::Lock::release).
    Release,
    /// [`Lock::force_release`](crate::Lock::force_release).
    ForceRelease,
    /// [`Lock::inspect`](crate::Lock::inspect).
    Inspect,
    /// [`Lock::tie`](crate::Lock::tie).
    Tie,
    /// [`Lock::watch`](crate::Lock::watch) and [`Lock::watch_turn`](crate::Lock::watch_turn):
    /// listening for a name's changes.
    Watch,
}

impl Operation {
    /// The operation in the words messages use: `"try acquire"`, `"force release"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::TryAcquire => "try acquire",
            Self::TryAcquireInLine => "try acquire in line",
            Self::LeaveLine => "leave line",
            Self::Renew => "renew",
            Self::Release => "release",
            Self::ForceRelease => "force release",
            Self::Inspect => "inspect",
            Self::Tie => "tie",
            Self::Watch => "watch",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    #[error("backend unreachable: {operation}: {message}")]
    Unreachable {
        /// The operation that failed.
        operation: Operation,
        /// The backend, as users know it: `"Redis"`, `"Postgres"`, `"files"`.
        backend: &'static str,
        /// What failed, without secrets.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend answered with an error (permission denied, disk full, a server error).
    #[error("backend error: {operation}: {message}")]
    Backend {
        /// The operation that failed.
        operation: Operation,
        /// The backend, as users know it: `"Redis"`, `"Postgres"`, `"files"`.
        backend: &'static str,
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
    /// An [`Error::Unreachable`]: `backend` could not be reached during `operation`.
    pub fn unreachable(
        backend: &'static str,
        operation: Operation,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Self::Unreachable {
            operation,
            backend,
            message: message.into(),
            source,
        }
    }

    /// An [`Error::Backend`]: `backend` answered `operation` with an error.
    pub fn backend(
        backend: &'static str,
        operation: Operation,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Self::Backend {
            operation,
            backend,
            message: message.into(),
            source,
        }
    }

    /// True for [`Error::InvalidInput`]: the caller must change its input; retrying is useless.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput(_))
    }

    /// The operation that failed, for [`Error::Unreachable`] and [`Error::Backend`].
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Self::Unreachable { operation, .. } | Self::Backend { operation, .. } => {
                Some(*operation)
            }
            _ => None,
        }
    }

    /// The backend it failed in, for [`Error::Unreachable`] and [`Error::Backend`].
    pub fn backend_name(&self) -> Option<&'static str> {
        match self {
            Self::Unreachable { backend, .. } | Self::Backend { backend, .. } => Some(backend),
            _ => None,
        }
    }

    /// The same error without its source, for a second caller waiting on the same answer.
    pub fn without_source(&self) -> Self {
        match self {
            Self::InvalidInput(input) => Self::InvalidInput(input.clone()),
            Self::Unreachable {
                operation,
                backend,
                message,
                ..
            } => Self::unreachable(backend, *operation, message.clone(), None),
            Self::Backend {
                operation,
                backend,
                message,
                ..
            } => Self::backend(backend, *operation, message.clone(), None),
            Self::Corrupt {
                name,
                location,
                detail,
            } => Self::Corrupt {
                name: name.clone(),
                location: location.clone(),
                detail: detail.clone(),
            },
        }
    }
}

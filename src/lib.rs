#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod connect;

// What users call: taking, holding and watching locks.
pub use lock_core::{
    AcquireOptions, Acquiring, Acquisition, Guard, LossReason, NotAcquired, Wait, acquire,
};
// The trait, its types and errors.
pub use lock_core::{
    AcquireOutcome, BoxError, Capabilities, Claim, Error, FencingToken, Holder, HolderTie, Holders,
    InvalidInput, Kind, Lease, Lock, LockName, LockState, MAX_NAME_BYTES, MAX_OWNER_BYTES,
    MemoryLock, Operation, OwnerId, Permits, ReleaseOutcome, RenewOutcome, SHARED_CAPACITY, Ttl,
};
// For backend authors.
pub use lock_core::raw;

/// The file backend (`file://`): the `lock-file` crate.
#[cfg(feature = "file")]
pub use lock_file as file;
/// The Postgres backend (`postgres://`): the `lock-postgres` crate.
#[cfg(feature = "postgres")]
pub use lock_postgres as postgres;
/// The Redis backend (`redis://`): the `lock-redis` crate.
#[cfg(feature = "redis")]
pub use lock_redis as redis;

pub use crate::connect::{BackendKind, LOCK_URL, connect, connect_default, parse_url};
/// `url` with its password shown as `***`, for messages and logs.
pub use lock_core::raw::redact_url as redact;

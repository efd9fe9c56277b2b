#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod connect;

pub use lock_core::*;
#[cfg(feature = "file")]
pub use lock_file;
#[cfg(feature = "postgres")]
pub use lock_postgres;
#[cfg(feature = "redis")]
pub use lock_redis;

pub use crate::connect::{BackendKind, LOCK_URL, connect, connect_default, parse_url};
/// `url` with its password shown as `***`, for messages and logs.
pub use lock_core::backend_kit::redact_url as redact;

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod url;

pub use lock_core::*;
#[cfg(feature = "file")]
pub use lock_file;
#[cfg(feature = "postgres")]
pub use lock_postgres;
#[cfg(feature = "redis")]
pub use lock_redis;

pub use crate::url::{BackendKind, LOCK_URL, connect, connect_default, parse_url, redact};

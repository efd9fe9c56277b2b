#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod url;

pub use lock_core::*;
#[cfg(feature = "file")]
pub use lock_file;

pub use crate::url::{BackendKind, LOCK_URL, connect, connect_default, parse_url, redact};

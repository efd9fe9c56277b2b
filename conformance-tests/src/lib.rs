#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod cases;
mod cross_process;
mod macros;
mod runner;
mod suite;

pub use async_trait::async_trait;
pub use cross_process::{CYCLES, PERMITS, WORKERS};
pub use lock_testkit as kit;
pub use runner::{run_case, run_suites};
pub use suite::{CaseFuture, Client, Setup, Suite};

#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod cases;
mod cross_process;
mod macros;
mod suite;

pub use cross_process::{CYCLES, WORKERS};
pub use lock_testkit as kit;
pub use suite::{CaseFuture, Client, Setup, Suite, run};

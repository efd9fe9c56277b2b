#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod capabilities;
mod change_hub;
mod error;
mod guard;
mod lease;
mod lock;
mod memory;
mod name;
mod outcome;
mod owner;
mod token;
mod ttl;
mod wait;

pub use capabilities::Capabilities;
pub use change_hub::ChangeHub;
pub use error::{BoxError, Error, InvalidInput};
pub use guard::{AcquireOptions, Guard, LossReason};
pub use lease::{Holder, Lease};
pub use lock::{ChangeFuture, Lock};
pub use memory::MemoryLock;
pub use name::{LockName, MAX_NAME_BYTES};
pub use outcome::{AcquireOutcome, InLineOutcome, LockState, ReleaseOutcome, RenewOutcome};
pub use owner::{MAX_OWNER_BYTES, OwnerId};
pub use token::FencingToken;
pub use ttl::Ttl;
pub use wait::{Acquisition, LINE_PATIENCE, Wait, acquire, patience_millis};

pub use async_trait::async_trait;

// ---- For backend authors (issue 16, item 5): what every backend repeats, in one place. ----
pub mod backend_kit;

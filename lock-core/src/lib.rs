#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod acquiring;
mod backend_kit;
mod capabilities;
mod change_hub;
mod claim;
mod error;
mod guard;
mod kind;
mod lease;
mod lock;
mod memory;
mod metrics;
mod name;
mod outcome;
mod owner;
pub mod raw;
mod room;
mod tie;
mod token;
mod ttl;
mod wait;

// The user's face: what code that takes, holds and watches locks calls.
pub use acquiring::Acquiring;
pub use guard::{AcquireOptions, Guard, LossReason};
pub use wait::{Acquisition, NotAcquired, Wait, acquire};

pub use capabilities::Capabilities;
pub use claim::Claim;
pub use error::{BoxError, Error, InvalidInput, Operation};
pub use kind::{Kind, Permits, SHARED_CAPACITY};
pub use lease::{Holder, Holders, Lease};
pub use lock::Lock;
pub use memory::MemoryLock;
pub use name::{LockName, MAX_NAME_BYTES};
pub use outcome::{AcquireOutcome, LockState, ReleaseOutcome, RenewOutcome};
pub use owner::{MAX_OWNER_BYTES, OwnerId};
pub use tie::HolderTie;
pub use token::FencingToken;
pub use ttl::Ttl;

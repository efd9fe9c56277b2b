//! The face for backend authors: what implementing [`Lock`](crate::Lock) takes beyond the
//! types every user sees (as OpenDAL's `raw` sits apart from its `Operator`).
//!
//! - [`async_trait`](macro@async_trait): the trait is written with it; implement it the same way.
//! - [`ChangeHub`] and [`ChangeFuture`]: per-name wake-ups without lost events, for
//!   [`Lock::watch`](crate::Lock::watch) and [`Lock::watch_turn`](crate::Lock::watch_turn).
//! - [`InLineOutcome`], [`LINE_PATIENCE`] and [`patience_millis`]: the waiters' line
//!   ([`Lock::try_acquire_in_line`](crate::Lock::try_acquire_in_line)).
//! - [`Admission`], [`admit`] and [`servable`]: the permit arithmetic (does a claim fit a
//!   name's leases, which waiters does a release serve), the same on every backend.
//! - [`HolderTie::from_fd`](crate::HolderTie::from_fd): a tie of a lease to its holders'
//!   processes ([`Lock::tie`](crate::Lock::tie)).
//! - What every backend repeats, in one place: [`corrupt`] for stored state this library did
//!   not write, [`config_error`] for a setting that cannot be used, [`Origin`] to word a
//!   failure from its operation and backend, [`during`] to name the operation at a method's edge, [`Secret`] and [`redact_url`] to keep passwords
//!   out of messages (both print [`REDACTED`]), [`percent_decode`] (strict) and
//!   [`timeout_param`] to read URL values the same way everywhere.
//!
//! A backend proves it keeps the contract with the `conformance-tests` crate: one line,
//! `conformance_tests::suite!(MySetup);`.

pub use async_trait::async_trait;

pub use crate::backend_kit::{
    MAX_TIMEOUT, Origin, REDACTED, Secret, config_error, corrupt, during, percent_decode,
    redact_url, timeout_param,
};
pub use crate::change_hub::ChangeHub;
pub use crate::lock::ChangeFuture;
pub use crate::outcome::InLineOutcome;
pub use crate::room::{Admission, admit, mismatch, servable};
pub use crate::wait::{LINE_PATIENCE, patience_millis};

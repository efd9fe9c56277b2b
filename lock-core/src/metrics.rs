//! What the layer above the backends reports through the [`metrics`] facade: nothing is
//! recorded unless the application installs a recorder (`metrics-exporter-prometheus`, say).
//! The names and labels, as the README's "Metrics" table lists them:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `lock_acquisitions_total` | counter | `backend`, `kind`, `outcome` | acquisitions ([`acquire`](crate::acquire), [`Guard::acquire`](crate::Guard::acquire)) by how they ended: `acquired`, `held` (one try, taken), `timed_out`, `error` |
//! | `lock_wait_seconds` | histogram | `backend`, `kind` | from an acquisition's start to its end, whatever the outcome |
//! | `lock_hold_seconds` | histogram | `backend`, `kind` | from a guard's grant to its release or drop |
//! | `lock_renewals_failed_total` | counter | `backend` | renewals that failed with an error (the guard retries until the lease would lapse) |
//! | `lock_losses_total` | counter | `backend`, `reason` | guards that lost their lease: `refused` (a renewal was answered lost), `unreachable` (no renewal got through in time) |
//! | `lock_waiters` | gauge | `backend` | acquisitions of this process waiting now (in line, or polling) |
//!
//! `backend` is [`Lock::backend_name`](crate::Lock::backend_name) (`memory`, `file`, `redis`,
//! `postgres`); `kind` is [`Kind::as_str`](crate::Kind::as_str). Names and owners are never
//! labels: there can be any number of them.

use std::time::Duration;

use ::metrics::{counter, gauge, histogram};

use crate::{Kind, LossReason};

/// How an acquisition ended, as the `outcome` label says it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Outcome {
    Acquired,
    Held,
    TimedOut,
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::Held => "held",
            Self::TimedOut => "timed_out",
            Self::Error => "error",
        }
    }
}

/// Records an acquisition of `kind` on `backend` that ended as `outcome` after `waited`.
pub(crate) fn acquisition(backend: &'static str, kind: Kind, outcome: Outcome, waited: Duration) {
    let kind = kind.as_str();
    counter!("lock_acquisitions_total", "backend" => backend, "kind" => kind, "outcome" => outcome.as_str())
        .increment(1);
    histogram!("lock_wait_seconds", "backend" => backend, "kind" => kind)
        .record(waited.as_secs_f64());
}

/// Records a guard's hold of `kind` on `backend`, `held` long.
pub(crate) fn hold(backend: &'static str, kind: Kind, held: Duration) {
    histogram!("lock_hold_seconds", "backend" => backend, "kind" => kind.as_str())
        .record(held.as_secs_f64());
}

/// Records a renewal that failed with an error.
pub(crate) fn renewal_failed(backend: &'static str) {
    counter!("lock_renewals_failed_total", "backend" => backend).increment(1);
}

/// Records a guard's loss.
pub(crate) fn loss(backend: &'static str, reason: &LossReason) {
    let reason = match reason {
        LossReason::Refused => "refused",
        LossReason::Unreachable { .. } => "unreachable",
    };
    counter!("lock_losses_total", "backend" => backend, "reason" => reason).increment(1);
}

/// One waiting acquisition in the `lock_waiters` gauge, from [`Waiting::start`] until dropped.
#[derive(Debug)]
pub(crate) struct Waiting {
    backend: &'static str,
}

impl Waiting {
    pub(crate) fn start(backend: &'static str) -> Self {
        gauge!("lock_waiters", "backend" => backend).increment(1.0);
        Self { backend }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        gauge!("lock_waiters", "backend" => self.backend).decrement(1.0);
    }
}

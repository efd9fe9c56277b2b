//! Every case of the suite: one `pub async fn` per line of the contract (`docs/contract.md`,
//! and the `# Behavior` sections of `Lock`'s methods), each documented by the line it checks,
//! in a file per area; and [`CASES`], the one list that runs them, with the capabilities each
//! needs.
//!
//! A case the backend's capabilities rule out is reported as ignored, never as passed. A new
//! case is an `async fn` in its area's file and one line in [`CASES`]; a test below fails when
//! a case is missing from the list.

pub mod acquire;
pub mod concurrency;
pub mod guard;
pub mod input;
pub mod inspect;
pub mod line;
pub mod permits;
pub mod release;
pub mod renew;
pub mod shared;
mod support;
pub mod tie;
pub mod tokens;
pub mod waiting;

use lock_core::Capabilities;

use crate::suite::{CaseFuture, Suite};

/// One case: its name, what it needs of the backend, and its body.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's name, its function's: `acquire_open_name`.
    pub name: &'static str,
    /// The capabilities the case needs; a backend without one of them has the case ignored.
    pub needs: &'static [Need],
    /// Runs the case.
    pub body: for<'a> fn(&'a Suite) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("needs", &self.needs)
            .finish_non_exhaustive()
    }
}

impl Case {
    /// The first capability the case needs and `capabilities` lacks, if any.
    pub fn missing(&self, capabilities: Capabilities) -> Option<Need> {
        self.needs.iter().copied().find(|n| !n.in_(capabilities))
    }
}

/// A capability a case needs: one field of [`Capabilities`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// [`Capabilities::expiry`].
    Expiry,
    /// [`Capabilities::fencing`].
    Fencing,
    /// [`Capabilities::wake_on_release`].
    WakeOnRelease,
    /// [`Capabilities::cross_process`].
    CrossProcess,
    /// [`Capabilities::owner_on_any_handle`].
    OwnerOnAnyHandle,
    /// [`Capabilities::fair_line`].
    FairLine,
    /// [`Capabilities::holder_tie`].
    HolderTie,
    /// No [`Capabilities::holder_tie`]: a tie, if the backend gives one, only keeps a lease.
    NoHolderTie,
    /// [`Capabilities::permits`].
    Permits,
    /// No [`Capabilities::permits`]: permit claims must be refused.
    NoPermits,
    /// [`Capabilities::shared`].
    Shared,
}

impl Need {
    /// Whether `capabilities` has it.
    pub fn in_(self, capabilities: Capabilities) -> bool {
        let c = capabilities;
        match self {
            Need::Expiry => c.expiry,
            Need::Fencing => c.fencing,
            Need::WakeOnRelease => c.wake_on_release,
            Need::CrossProcess => c.cross_process,
            Need::OwnerOnAnyHandle => c.owner_on_any_handle,
            Need::FairLine => c.fair_line,
            Need::HolderTie => c.holder_tie,
            Need::NoHolderTie => !c.holder_tie,
            Need::Permits => c.permits,
            Need::NoPermits => !c.permits,
            Need::Shared => c.shared,
        }
    }

    /// The field's name.
    pub fn name(self) -> &'static str {
        match self {
            Need::Expiry => "expiry",
            Need::Fencing => "fencing",
            Need::WakeOnRelease => "wake_on_release",
            Need::CrossProcess => "cross_process",
            Need::OwnerOnAnyHandle => "owner_on_any_handle",
            Need::FairLine => "fair_line",
            Need::HolderTie | Need::NoHolderTie => "holder_tie",
            Need::Permits | Need::NoPermits => "permits",
            Need::Shared => "shared",
        }
    }

    /// Why a case that needs this does not run on a backend without it.
    pub fn reason(self) -> String {
        match self {
            Need::NoHolderTie => "the backend has `holder_tie`: the tie cases apply".to_owned(),
            Need::NoPermits => "the backend has `permits`: the permit cases apply".to_owned(),
            need => format!("the backend lacks `{}`", need.name()),
        }
    }
}

/// `case!(area::name, Need…)`: the list entry of case `area::name`.
macro_rules! case {
    ($area:ident :: $name:ident $(, $need:ident)* $(,)?) => {
        Case {
            name: stringify!($name),
            needs: &[$(Need::$need),*],
            body: |s| Box::pin($area::$name(s)),
        }
    };
}

/// Every case, in the order they are listed in the test output.
pub const CASES: &[Case] = &[
    // acquire.rs
    case!(acquire::acquire_open_name),
    case!(acquire::acquire_held_name_is_refused),
    case!(acquire::reacquire_by_holder_keeps_token),
    // renew.rs
    case!(renew::renew_extends_own_lease),
    case!(renew::renew_after_expiry_is_lost, Expiry),
    case!(renew::renew_after_release_is_lost),
    case!(renew::renew_never_extends_another_owner),
    // release.rs
    case!(release::release_by_holder_opens_at_once),
    case!(release::release_by_non_owner_changes_nothing),
    case!(release::release_when_open_is_not_locked),
    case!(release::release_after_expiry_is_not_locked, Expiry),
    case!(release::force_release_opens_any_lease),
    case!(release::force_release_when_open_is_not_locked),
    // inspect.rs
    case!(inspect::inspect_reports_and_changes_nothing),
    case!(inspect::lease_expires_after_ttl, Expiry),
    // tokens.rs
    case!(tokens::tokens_rise_across_release_expiry_and_force, Fencing),
    // input.rs
    case!(input::names_never_collide),
    case!(input::bad_input_is_refused_before_the_backend),
    // concurrency.rs
    case!(concurrency::racing_clients_exactly_one_wins),
    case!(concurrency::one_handle_many_tasks, OwnerOnAnyHandle),
    case!(concurrency::cross_process_exclusion, CrossProcess),
    case!(concurrency::cross_process_semaphore, CrossProcess, Permits),
    case!(
        concurrency::cross_process_readers_writers,
        CrossProcess,
        Shared
    ),
    case!(
        concurrency::racing_clients_on_a_semaphore_exactly_n_win,
        Permits
    ),
    // waiting.rs
    case!(waiting::waiter_wakes_on_release),
    case!(
        waiting::release_wakes_watchers_and_the_first_in_line,
        WakeOnRelease
    ),
    case!(
        waiting::leaving_the_line_wakes_the_next_turn,
        WakeOnRelease,
        FairLine
    ),
    case!(waiting::waiter_wakes_on_expiry, Expiry),
    case!(waiting::wait_runs_out_with_the_holder),
    // line.rs
    case!(line::line_serves_waiters_in_order, FairLine),
    case!(line::line_place_lapses_after_patience, FairLine),
    case!(line::leave_line_moves_the_next_up, FairLine),
    case!(line::try_acquire_does_not_wait_in_line, FairLine),
    case!(line::waiters_are_served_in_order, FairLine),
    // guard.rs
    case!(guard::guard_renews_past_ttl, Expiry),
    case!(guard::guard_tells_when_lost),
    case!(guard::guard_drop_releases),
    case!(guard::guard_ties_its_lease, HolderTie),
    // tie.rs
    case!(tie::closing_the_tie_ends_the_lease, HolderTie),
    case!(tie::a_copy_of_the_tie_keeps_the_lease, HolderTie),
    case!(tie::renewal_and_reacquisition_keep_the_tie, HolderTie),
    case!(tie::a_tied_lease_still_lapses_at_its_ttl, HolderTie),
    case!(tie::a_tie_needs_a_live_lease_of_its_owner, HolderTie),
    case!(
        tie::a_tie_without_holder_tie_only_keeps_the_lease,
        NoHolderTie
    ),
    // permits.rs
    case!(permits::a_semaphore_admits_at_most_n, Permits),
    case!(permits::a_release_frees_exactly_one_permit, Permits),
    case!(
        permits::expiry_of_one_permit_frees_exactly_one,
        Permits,
        Expiry
    ),
    case!(permits::another_n_is_refused_and_changes_nothing, Permits),
    case!(permits::force_release_removes_every_permit, Permits),
    case!(
        permits::permit_waiters_are_served_in_order,
        Permits,
        FairLine
    ),
    case!(
        permits::a_release_wakes_the_next_that_fits,
        Permits,
        WakeOnRelease
    ),
    case!(
        permits::permits_are_refused_without_the_capability,
        NoPermits
    ),
    // shared.rs
    case!(shared::readers_share_and_a_writer_is_refused, Shared),
    case!(shared::a_writer_holds_alone, Shared),
    case!(
        shared::a_waiting_writer_keeps_later_readers_out,
        Shared,
        FairLine
    ),
    case!(
        shared::a_writer_release_wakes_the_waiting_readers,
        Shared,
        WakeOnRelease
    ),
    case!(shared::another_kind_on_a_shared_name_is_refused, Shared),
];

/// The case named `name`.
pub fn case(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `pub async fn` of a case file is in [`CASES`], once, and nothing else is.
    #[test]
    fn every_case_is_listed_once() {
        let files = [
            ("acquire", include_str!("acquire.rs")),
            ("renew", include_str!("renew.rs")),
            ("release", include_str!("release.rs")),
            ("inspect", include_str!("inspect.rs")),
            ("tokens", include_str!("tokens.rs")),
            ("input", include_str!("input.rs")),
            ("concurrency", include_str!("concurrency.rs")),
            ("waiting", include_str!("waiting.rs")),
            ("line", include_str!("line.rs")),
            ("guard", include_str!("guard.rs")),
            ("tie", include_str!("tie.rs")),
            ("permits", include_str!("permits.rs")),
            ("shared", include_str!("shared.rs")),
        ];
        let mut defined: Vec<&str> = files
            .iter()
            .flat_map(|(_, text)| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("pub async fn "))
                    .filter_map(|l| l.split('(').next())
            })
            .collect();
        let mut listed: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        defined.sort_unstable();
        listed.sort_unstable();
        assert_eq!(listed, defined);
    }
}

//! [`suite!`](crate::suite): one line that turns every case into a `#[test]`.

/// Generates one `#[test]` per conformance case against a backend.
///
/// ```ignore
/// conformance_tests::suite!(MySetup);
/// ```
///
/// `MySetup` is an expression of a type that implements [`Setup`](crate::Setup); it is
/// evaluated once per test. Each test runs its case on a fresh multi-threaded tokio runtime.
/// A case that the backend's [`Capabilities`](lock_core::Capabilities) rule out prints
/// `… does not apply: the backend lacks …` and passes; nothing else ever skips.
#[macro_export]
macro_rules! suite {
    ($setup:expr) => {
        $crate::suite!(@cases $setup;
            acquire_open_name,
            acquire_held_name_is_refused,
            reacquire_by_holder_keeps_token,
            renew_extends_own_lease,
            renew_after_expiry_is_lost,
            renew_after_release_is_lost,
            renew_never_extends_another_owner,
            release_by_holder_opens_at_once,
            release_by_non_owner_changes_nothing,
            release_when_open_is_not_locked,
            release_after_expiry_is_not_locked,
            force_release_opens_any_lease,
            force_release_when_open_is_not_locked,
            inspect_reports_and_changes_nothing,
            lease_expires_after_ttl,
            tokens_rise_across_release_expiry_and_force,
            names_never_collide,
            bad_input_is_refused_before_the_backend,
            racing_clients_exactly_one_wins,
            one_handle_many_tasks,
            waiter_wakes_on_release,
            release_wakes_watchers_and_the_first_in_line,
            leaving_the_line_wakes_the_next_turn,
            waiter_wakes_on_expiry,
            wait_runs_out_with_the_holder,
            line_serves_waiters_in_order,
            line_place_lapses_after_patience,
            leave_line_moves_the_next_up,
            try_acquire_does_not_wait_in_line,
            waiters_are_served_in_order,
            guard_renews_past_ttl,
            guard_tells_when_lost,
            guard_drop_releases,
            closing_the_tie_ends_the_lease,
            a_copy_of_the_tie_keeps_the_lease,
            renewal_and_reacquisition_keep_the_tie,
            a_tied_lease_still_lapses_at_its_ttl,
            a_tie_needs_a_live_lease_of_its_owner,
            guard_ties_its_lease,
            cross_process_exclusion,
        );
    };
    (@cases $setup:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run(module_path!(), stringify!($case), $setup, |s| {
                    ::std::boxed::Box::pin($crate::cases::$case(s))
                });
            }
        )*
    };
}

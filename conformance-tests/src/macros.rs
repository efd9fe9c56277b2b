//! [`suite!`](crate::suite): one line that makes a test binary run every case.

/// The `main` of a test binary that runs every conformance case against a backend.
///
/// ```ignore
/// conformance_tests::suite!(MySetup);
/// ```
///
/// The test target needs `harness = false` in the crate's `Cargo.toml`, since the suite brings
/// its own harness (it prints and filters as `cargo test` does):
///
/// ```toml
/// [[test]]
/// name = "conformance"
/// harness = false
/// ```
///
/// `MySetup` is an expression of a type that implements [`Setup`](crate::Setup). Several
/// setups in one binary each get a prefix before their cases' names:
///
/// ```ignore
/// conformance_tests::suite!("lease::" => Postgres::lease(), "session::" => Postgres::session());
/// ```
///
/// Each case runs on a fresh multi-threaded tokio runtime. A case that the backend's
/// [`Capabilities`](lock_core::Capabilities) rule out is reported as ignored, with the
/// capability it lacks; nothing else is ever skipped.
#[macro_export]
macro_rules! suite {
    ($($prefix:literal => $setup:expr),+ $(,)?) => {
        fn main() -> ::std::process::ExitCode {
            $crate::run_suites(::std::vec![
                $(($prefix, ::std::sync::Arc::new($setup) as ::std::sync::Arc<dyn $crate::Setup>)),+
            ])
        }
    };
    ($setup:expr) => {
        $crate::suite!("" => $setup);
    };
}

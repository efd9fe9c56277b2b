//! The in-memory reference backend passes the suite.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use conformance_tests::Setup;
use lock_core::{Lock, MemoryLock};

/// One store per test process; every handle shares it (names are unique per case).
static STORE: LazyLock<Arc<MemoryLock>> = LazyLock::new(Arc::default);

struct Memory;

impl Setup for Memory {
    fn location(&self) -> String {
        "memory".into()
    }

    fn connect(&self, _: &str) -> Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send + '_>> {
        Box::pin(async { STORE.clone() as Arc<dyn Lock> })
    }
}

conformance_tests::suite!(Memory);

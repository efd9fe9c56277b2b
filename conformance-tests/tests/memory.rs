//! The in-memory reference backend passes the suite; the cases its capabilities rule out
//! (cross-process, ties) show as ignored.

use std::sync::{Arc, LazyLock};

use conformance_tests::{Setup, async_trait};
use lock_core::{Lock, MemoryLock};

/// One store per test process; every handle shares it (names are unique per case).
static STORE: LazyLock<Arc<MemoryLock>> = LazyLock::new(Arc::default);

struct Memory;

#[async_trait]
impl Setup for Memory {
    fn location(&self) -> String {
        "memory".into()
    }

    async fn connect(&self, _: &str) -> Arc<dyn Lock> {
        STORE.clone()
    }
}

conformance_tests::suite!(Memory);

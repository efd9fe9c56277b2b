//! The file backend passes the whole conformance suite, cross-process check and ties
//! included, on real files in a temp dir.

use std::sync::{Arc, LazyLock};

use conformance_tests::{Setup, async_trait};
use lock_core::Lock;
use lock_file::FileLock;

/// One lock directory per test process; workers of the cross-process case are handed its path.
static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a temp dir"));

struct Files;

#[async_trait]
impl Setup for Files {
    fn location(&self) -> String {
        DIR.path().to_str().expect("a UTF-8 temp path").to_owned()
    }

    async fn connect(&self, dir: &str) -> Arc<dyn Lock> {
        Arc::new(FileLock::new(dir).expect("the lock directory"))
    }
}

conformance_tests::suite!(Files);

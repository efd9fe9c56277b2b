//! The file backend passes the whole conformance suite, cross-process check included, on
//! real files in a temp dir.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use conformance_tests::Setup;
use lock_core::Lock;
use lock_file::FileLock;

/// One lock directory per test process; workers of the cross-process case are handed its path.
static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a temp dir"));

struct Files;

impl Setup for Files {
    fn location(&self) -> String {
        DIR.path().to_str().expect("a UTF-8 temp path").to_owned()
    }

    fn connect(&self, dir: &str) -> Pin<Box<dyn Future<Output = Arc<dyn Lock>> + Send + '_>> {
        let lock = FileLock::new(dir).expect("the lock directory");
        Box::pin(async move { Arc::new(lock) as Arc<dyn Lock> })
    }
}

conformance_tests::suite!(Files);

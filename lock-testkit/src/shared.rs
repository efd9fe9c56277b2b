//! [`Shared`]: a server started once per test process and stopped, its directory removed,
//! when the process exits (a `static` is never dropped, so `OnceLock<RedisServer>` would
//! leave its server's temp dir behind on every run).

use std::sync::Mutex;

/// A server (or servers) started on first use and stopped at exit.
///
/// ```no_run
/// use lock_testkit::{RedisServer, Shared};
///
/// static SERVER: Shared<RedisServer> = Shared::new(RedisServer::start);
///
/// let url = SERVER.with(RedisServer::url);
/// ```
pub struct Shared<T: Send + 'static> {
    slot: Mutex<Option<T>>,
    start: fn() -> T,
}

impl<T: Send + 'static> Shared<T> {
    /// A server that `start` starts on first use.
    pub const fn new(start: fn() -> T) -> Self {
        Self {
            slot: Mutex::new(None),
            start,
        }
    }

    /// Runs `f` on the server, starting it first if need be.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let server = slot.get_or_insert_with(|| {
            at_exit(move || drop(self.slot.lock().unwrap_or_else(|e| e.into_inner()).take()));
            (self.start)()
        });
        f(server)
    }
}

type ExitHook = Box<dyn FnOnce() + Send>;

static AT_EXIT: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

/// Runs `hook` when the process exits (the test harness returns from `main`, or calls
/// `exit` after a failure).
fn at_exit(hook: impl FnOnce() + Send + 'static) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `run_at_exit` is a plain `extern "C" fn` that never unwinds.
        unsafe { nix::libc::atexit(run_at_exit) };
    });
    AT_EXIT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(hook));
}

extern "C" fn run_at_exit() {
    let hooks = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()));
    for hook in hooks {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook));
    }
}

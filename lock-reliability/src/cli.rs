//! The CLI lanes: workers are `lock run` processes (the real `lock` binary) whose commands
//! log when they start and end, and the faults strike `lock` itself: `SIGKILL` of `lock`
//! alone, `SIGKILL` of everything (`lock`'s group, the supervisor's and the command's),
//! `SIGSTOP` of `lock` past the ttl, `SIGTERM` of `lock`.
//!
//! A command killed by `KILL` cannot log its end, so every process of a command holds a lock
//! the kernel lets go only when the last of them is gone: the command takes an exclusive
//! `flock` on a file of its own under the lane's `alive/` directory and hands the descriptor
//! to its grandchild. A command starting looks at every other such file: one it cannot lock
//! belongs to a command with a process still alive (an overlap, for certain: seen alive after
//! the newcomer started); one it can lock belongs to a command wholly gone, and is removed.
//! See [`log`] for the lines, [`command`] for the command, [`lane`] for the runner's side.

pub mod command;
pub mod lane;
pub mod log;

use std::path::PathBuf;

/// The `lock` binary the CLI lanes run: `$LOCK_BIN`, else `lock` beside this binary (the
/// same target directory: `cargo build --release -p lock-cli -p lock-reliability`).
pub fn lock_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LOCK_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("this binary's path");
    let path = exe.with_file_name("lock");
    if !path.is_file() {
        panic!(
            "the CLI lanes run the `lock` binary, and there is none at {}: build it into the \
             same target directory first (`cargo build --release -p lock-cli -p \
             lock-reliability`, or `cargo build -p lock-cli` for a debug build), or name it \
             with LOCK_BIN=/path/to/lock",
            path.display()
        );
    }
    path
}

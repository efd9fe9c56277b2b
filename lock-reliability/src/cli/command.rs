//! The command a CLI lane's `lock run` guards (this binary's hidden `command` role): it takes
//! its alive file's lock, starts, looks at every other command's alive file, holds for a
//! while through a grandchild (`sleep`) that inherits the lock, and says it ended.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fs4::FileExt;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::unistd::getppid;

use crate::cli::log::{self, Entry};
use crate::clock::now_ns;

/// The directory of the alive files of the lane in `dir`.
pub fn alive_dir(dir: &Path) -> PathBuf {
    dir.join("alive")
}

/// Runs the command: see the module doc.
pub fn run(dir: &Path, hold: Duration) {
    let pid = std::process::id();
    let alive = alive_dir(dir);
    std::fs::create_dir_all(&alive).expect("the alive directory");
    // Locked under a name nobody looks at, then renamed: a file found under `alive/` is
    // always locked by its command until every process of that command is gone.
    let fresh = alive.join(format!(".new-{pid}"));
    let mine = File::create(&fresh).expect("an alive file");
    FileExt::lock(&mine).expect("the alive file's lock");
    std::fs::rename(&fresh, alive.join(pid.to_string())).expect("rename the alive file");
    // The grandchild inherits the descriptor, and with it the lock.
    fcntl(&mine, FcntlArg::F_SETFD(FdFlag::empty())).expect("keep the alive file across exec");

    let supervisor = getppid().as_raw() as u32;
    let lock = parent_of(supervisor).unwrap_or(0);
    let token = std::env::var("LOCK_FENCING_TOKEN")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let start = now_ns();
    let mut entries = vec![Entry::Start {
        pid,
        lock,
        supervisor,
        token,
        t: start,
    }];
    entries.extend(look_at_others(&alive, pid));
    log::append(dir, &entries);

    let status = Command::new("sleep")
        .arg(format!("{:.3}", hold.as_secs_f64()))
        .status()
        .expect("start the grandchild");
    drop(mine);
    if status.success() {
        log::append(dir, &[Entry::End { pid, t: now_ns() }]);
    }
}

/// What every other alive file says: alive (locked) or gone (lockable; then removed).
fn look_at_others(alive: &Path, pid: u32) -> Vec<Entry> {
    let mut seen = Vec::new();
    let Ok(files) = std::fs::read_dir(alive) else {
        return seen;
    };
    for file in files.flatten() {
        let Some(other) = file
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&o| o != pid)
        else {
            continue;
        };
        let Ok(f) = OpenOptions::new().read(true).open(file.path()) else {
            continue; // removed meanwhile by another newcomer: gone
        };
        let before = now_ns();
        match FileExt::try_lock(&f) {
            Ok(()) => {
                let _ = std::fs::remove_file(file.path());
                seen.push(Entry::Seen {
                    by: pid,
                    other,
                    alive: false,
                    t: now_ns(),
                });
            }
            _ => seen.push(Entry::Seen {
                by: pid,
                other,
                alive: true,
                t: before,
            }),
        }
    }
    seen
}

/// The parent of process `pid`, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

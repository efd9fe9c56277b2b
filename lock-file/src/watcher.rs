//! Change notification for waiters: one inotify (or platform) watcher per handle, on the
//! directories of the lock files someone waits on, fanned out per file by a [`ChangeHub`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lock_core::{ChangeFuture, ChangeHub};
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

#[derive(Default)]
pub(crate) struct Watcher {
    hub: Arc<ChangeHub>,
    state: Mutex<Option<Watching>>,
}

struct Watching {
    watcher: RecommendedWatcher,
    dirs: HashSet<PathBuf>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// A future that completes when `file` is written after this call; `None` when the
    /// platform watcher cannot be had (waiters then poll).
    pub(crate) fn subscribe(&self, file: &Path) -> Option<ChangeFuture> {
        let dir = file.parent()?;
        let change = self.hub.subscribe(&key(file));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            let hub = self.hub.clone();
            let watcher =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let Ok(event) = event else { return };
                    // Writes change a lease; opens and closes do not, and waking on them would
                    // have every waiter's own try wake all the others.
                    if matches!(
                        event.kind,
                        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
                            | EventKind::Remove(_)
                    ) {
                        for path in &event.paths {
                            hub.notify(&key(path));
                        }
                    }
                });
            match watcher {
                Ok(watcher) => {
                    *state = Some(Watching {
                        watcher,
                        dirs: HashSet::new(),
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no file change notification; waiters poll");
                    return None;
                }
            }
        }
        let watching = state.as_mut().expect("set above");
        if !watching.dirs.contains(dir) {
            if let Err(e) = watching.watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch; waiters poll");
                return None;
            }
            watching.dirs.insert(dir.to_owned());
        }
        Some(change)
    }
}

fn key(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

//! The file floor: what any flock-guarded lock file costs per operation, `open` + `flock` +
//! a 40-byte `pwrite` + unlock + `close` (BENCHMARKING.md: one such step per operation). A
//! lock cycle is two operations (acquire writes the lease, release writes it open), so the
//! floor cycle is two steps, run inline on the calling thread.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt};
use std::path::PathBuf;

use fs4::FileExt;

use crate::Res;
use crate::rounds::{BoxFuture, Side};

/// Two raw open/flock/write/unlock/close steps on one file.
pub struct FlockCycle {
    path: PathBuf,
}

impl FlockCycle {
    /// Cycles on the file at `path` (created when missing).
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn step(&self, record: &[u8; 40]) -> Res<()> {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        FileExt::lock(&file)?;
        file.write_all_at(record, 0)?;
        FileExt::unlock(&file)?;
        drop(file);
        Ok(())
    }
}

impl Side for FlockCycle {
    fn label(&self) -> String {
        "floor: 2 x (open + flock + 40-byte write + unlock + close)".into()
    }

    fn cycle(&mut self) -> BoxFuture<'_, Res<()>> {
        Box::pin(async move {
            self.step(b"{\"owner\":\"0123456789abcdef\",\"token\":42}\n")?;
            self.step(b"{\"owner\":null,\"token\":42,\"padding\":000}\n")?;
            Ok(())
        })
    }
}

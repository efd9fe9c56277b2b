//! The floor of a fair handoff on files: the same number of processes as the contention
//! section (this binary again, as hidden `__ring` workers) pass a turn round a ring through
//! one file, each blocked in `read` on its own inotify instance until the file is written,
//! then reading it under `flock`; the one whose turn it is writes the next one's number under
//! `flock`. No lock library, no tokio, no watcher thread: the kernel's part of handing a lock
//! file to one chosen process, every other process woken too (as they are when they wait on
//! a lock file). A handoff is one worker's write begun → the next worker's seeing its turn.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};

use crate::procfs::monotonic_ns;
use crate::stats::Spread;
use crate::{Res, together};

/// One turn of one worker, in `CLOCK_MONOTONIC` nanoseconds.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Turn {
    /// Read its own number in the file.
    saw: u64,
    /// Began writing the next worker's number.
    wrote: u64,
}

/// Runs `workers` ring workers for `turns` turns each in `dir`; the handoffs between them.
pub fn run(dir: &Path, workers: usize, turns: usize) -> Res<Spread> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("turn");
    std::fs::write(&file, "0")?;
    let exe = std::env::current_exe()?;
    let commands = (0..workers)
        .map(|index| {
            let mut command = Command::new(&exe);
            command
                .args(["__ring", "--file"])
                .arg(&file)
                .args(["--index", &index.to_string()])
                .args(["--workers", &workers.to_string()])
                .args(["--turns", &turns.to_string()]);
            command
        })
        .collect();
    let mut all: Vec<Turn> = Vec::new();
    for line in together::run("ring", commands)? {
        all.extend(serde_json::from_str::<Vec<Turn>>(&line)?);
    }
    all.sort_by_key(|t| t.saw);
    let handoffs: Vec<u64> = all
        .windows(2)
        .map(|p| p[1].saw.saturating_sub(p[0].wrote))
        .collect();
    Ok(Spread::of_nanos(&handoffs))
}

/// The worker: waits for its number in `file`, writes the next one's, `turns` times; prints
/// its turns as one JSON line.
pub fn worker(file: &Path, index: usize, workers: usize, turns: usize) -> Res<()> {
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC)?;
    let dir = file.parent().ok_or("the turn file has a directory")?;
    inotify.add_watch(dir, AddWatchFlags::IN_MODIFY)?;
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let mut done = Vec::with_capacity(turns);
    let next = ((index + 1) % workers).to_string();
    while done.len() < turns {
        // Look, then sleep until the next write; a write between the two is queued.
        while read_turn(file)? != index {
            inotify.read_events()?;
        }
        let saw = monotonic_ns();
        let wrote = monotonic_ns();
        write_turn(file, &next)?;
        done.push(Turn { saw, wrote });
    }
    // The last turn's successor may be done already; nobody waits for this one.
    println!("{}", serde_json::to_string(&done)?);
    Ok(())
}

fn locked(file: &Path, write: bool) -> Res<File> {
    let f = OpenOptions::new().read(true).write(write).open(file)?;
    fs4::FileExt::lock(&f)?;
    Ok(f)
}

fn read_turn(file: &Path) -> Res<usize> {
    let mut text = String::new();
    locked(file, false)?.read_to_string(&mut text)?;
    Ok(text.trim().parse().unwrap_or(usize::MAX))
}

fn write_turn(file: &Path, next: &str) -> Res<()> {
    let mut f = locked(file, true)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(format!("{next:<8}").as_bytes())?;
    Ok(())
}

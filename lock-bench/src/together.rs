//! Worker processes started together: this binary again, each saying `ready` once connected
//! and warmed up, all told `go` at once, each answering with one line (its JSON) at the end.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::Res;

/// Runs `commands` together as above; each worker's last line, in order. `what` names the
/// workers in errors.
pub fn run(what: &str, commands: Vec<Command>) -> Res<Vec<String>> {
    let mut children = Vec::new();
    for mut command in commands {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        children.push(child);
    }
    // Everyone connected and warmed up before anyone starts.
    let mut readers = Vec::new();
    for child in &mut children {
        let mut reader = BufReader::new(child.stdout.take().ok_or("worker stdout")?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err(format!("a {what} worker said {line:?} instead of ready").into());
        }
        readers.push(reader);
    }
    for child in &mut children {
        child
            .stdin
            .take()
            .ok_or("worker stdin")?
            .write_all(b"go\n")?;
    }
    let mut lines = Vec::new();
    for (mut reader, mut child) in readers.into_iter().zip(children) {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a {what} worker failed: {status}").into());
        }
        lines.push(line);
    }
    Ok(lines)
}

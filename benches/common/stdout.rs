//! Waiting for the line a benchmark's child process prints when it is ready (its URL, say).
//! Shared by the bench targets (`#[path]`-included).

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::time::Duration;

/// Reads `stdout` on a thread that keeps draining it (so the child never blocks on the pipe)
/// and returns the rest of the first line starting with `prefix`, or `None` after `wait`.
pub fn line_after(stdout: ChildStdout, prefix: &str, wait: Duration) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_owned();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.strip_prefix(&wanted) {
                sent = true;
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(wait).ok()
}

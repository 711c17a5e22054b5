//! Log lines go out to stderr in one write per worker wake, not one per line.
//!
//! Every audited request writes a line, and a write to stderr is a system call: into a file
//! or a container runtime's pipe it cost about as much as a tenth of the gateway's own work
//! on a proxied call. Runtime worker threads therefore keep their lines in a buffer of their
//! own and write it out when they park (the runtime calls [`on_park`] when a worker has
//! nothing left to run), or sooner once it holds [`LIMIT`] bytes. An idle gateway writes
//! each line as soon as its request is done; a busy one writes many lines at once.
//!
//! Only a thread that has parked once buffers: any other thread (the main thread, the
//! blocking pool, a thread of a library) writes each line at once, since nothing would
//! write its lines out. A worker thread's buffer is written out when the thread ends, so a
//! gateway that stops (even on a signal, which drains and stops the runtime) loses nothing;
//! only a process killed outright can lose what a busy worker had not written yet, at most
//! [`LIMIT`] bytes.

use std::cell::RefCell;
use std::io::{self, Write};

/// Past this many bytes, a worker writes its lines out without waiting to park.
pub const LIMIT: usize = 16 * 1024;

thread_local! {
    /// `None` until this thread first parks as a runtime worker.
    static PENDING: Pending = const { Pending(RefCell::new(None)) };
}

struct Pending(RefCell<Option<Vec<u8>>>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(lines) = self.0.get_mut() {
            write_out(&mut io::stderr(), lines);
        }
    }
}

/// What the log layer writes each line to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        if !buffer(line, &mut io::stderr()) {
            io::stderr().write_all(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// For the runtime's `on_thread_park`: writes out this thread's lines, and from now on
/// buffers the lines it writes.
pub fn on_park() {
    park(&mut io::stderr());
}

/// Adds `line` to this thread's buffer when it has one (writing the buffer to `out` once it
/// is full); false when the thread writes its lines at once.
fn buffer(line: &[u8], out: &mut impl Write) -> bool {
    PENDING
        .try_with(|pending| {
            // A line logged while the buffer is being written out goes straight out.
            let Ok(mut pending) = pending.0.try_borrow_mut() else {
                return false;
            };
            let Some(lines) = pending.as_mut() else {
                return false;
            };
            lines.extend_from_slice(line);
            if lines.len() >= LIMIT {
                write_out(out, lines);
            }
            true
        })
        .unwrap_or(false)
}

fn park(out: &mut impl Write) {
    let _ = PENDING.try_with(|pending| {
        if let Ok(mut pending) = pending.0.try_borrow_mut() {
            write_out(out, pending.get_or_insert_with(Vec::new));
        }
    });
}

/// Writes `lines` to `out` and empties it (keeping its allocation). A failed write loses the
/// lines, as a failed write of one line does.
fn write_out(out: &mut impl Write, lines: &mut Vec<u8>) {
    if !lines.is_empty() {
        let _ = out.write_all(lines);
        lines.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test runs on a thread of its own, so the thread-local buffer starts unset.
    fn on_new_thread(test: impl FnOnce() + Send + 'static) {
        std::thread::spawn(test).join().expect("test thread");
    }

    #[test]
    fn a_thread_that_never_parked_writes_each_line_at_once() {
        on_new_thread(|| {
            let mut out = Vec::new();
            assert!(
                !buffer(b"one\n", &mut out),
                "no buffer before the first park"
            );
            assert!(out.is_empty());
        });
    }

    #[test]
    fn a_worker_writes_its_lines_in_one_go_when_it_parks() {
        on_new_thread(|| {
            let mut out = Vec::new();
            park(&mut out);
            assert!(out.is_empty(), "nothing to write yet");
            assert!(buffer(b"one\n", &mut out));
            assert!(buffer(b"two\n", &mut out));
            assert!(out.is_empty(), "held until the worker parks");
            park(&mut out);
            assert_eq!(out, b"one\ntwo\n");
            park(&mut out);
            assert_eq!(out, b"one\ntwo\n", "written once");
        });
    }

    #[test]
    fn a_busy_worker_writes_out_once_the_buffer_is_full() {
        on_new_thread(|| {
            let mut out = Vec::new();
            park(&mut out);
            let line = [b'x'; 1000];
            let mut sent = 0;
            while out.is_empty() {
                assert!(buffer(&line, &mut out));
                sent += line.len();
                assert!(sent <= LIMIT + line.len(), "never written out");
            }
            assert_eq!(out.len(), sent, "every line, in one write");
            assert!(sent >= LIMIT);
        });
    }
}

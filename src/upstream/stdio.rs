//! stdio upstreams: a child process speaking newline-delimited JSON-RPC.
//!
//! Three tasks per process: a writer (outbound messages → stdin), a reader (stdout lines →
//! [`Inbound`]), and a waiter that owns the child, reaps it, and on shutdown closes stdin,
//! waits, then kills, so no child outlives the gateway. Each child leads a process group of
//! its own, and the whole group is killed once the child has exited or outlived its stop
//! grace, so nothing it started outlives it either (`guard.rs` covers a killed gateway). stderr lines go to the gateway's log
//! tagged with the upstream name.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::peer::Inbound;
use super::{Connection, INBOUND_QUEUE, MAX_MESSAGE_BYTES, OUTBOUND_QUEUE};
use crate::protocol::Message;
use crate::protocol::jsonrpc::ParseError;

/// How long a child gets to exit after its stdin closes before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long the reader waits, after stdout closes, for the exit status to name in errors.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);

/// Longest stderr line logged; the rest is cut so one noisy child cannot flood the log.
const MAX_STDERR_LINE: usize = 8 * 1024;

pub struct StdioSpec<'a> {
    pub upstream: &'a str,
    pub command: &'a str,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a PathBuf>,
}

/// Stops the child: closes stdin, waits [`STOP_GRACE`], then kills.
pub struct StdioCloser {
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl StdioCloser {
    pub async fn close(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
    }
}

pub fn spawn(spec: StdioSpec<'_>) -> std::io::Result<Connection> {
    // Recorded so that the orphan reaper leaves this child's exit status to tokio.
    let (mut child, registration) = super::reaper::spawn(&mut command(&spec)).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot start '{}': {e}", spec.command))
    })?;
    let (stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err(std::io::Error::other("child stdio was not piped")),
        };
    let name: std::sync::Arc<str> = spec.upstream.into();
    // Its own process group (see `command`): the group's id is the child's pid.
    let group = child.id();
    if let Some(pgid) = group {
        super::guard::watch(pgid);
    }
    tracing::info!(upstream = %name, command = %spec.command, pid = child.id(), "Started upstream process");

    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (status_tx, status_rx) = watch::channel(None);
    let close_stdin = CancellationToken::new();
    let (stop_tx, stop_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();

    tokio::spawn(write_loop(name.clone(), stdin, out_rx, close_stdin.clone()));
    tokio::spawn(read_loop(name.clone(), stdout, in_tx, status_rx));
    let stderr_logged = tokio::spawn(log_stderr(name.clone(), stderr));
    tokio::spawn(async move {
        let status = supervise_child(&name, child, group, stop_rx, close_stdin).await;
        drop(registration);
        // The server is gone; whatever it started goes with it (a restart must not leave
        // the old incarnation's children behind).
        if let Some(pgid) = group {
            super::guard::kill_group(pgid);
            super::guard::forget(pgid);
        }
        // The last stderr lines (and the count of those dropped) are logged before the
        // upstream is reported stopped, so a gateway that exits next does not lose them.
        let _ = tokio::time::timeout(EXIT_STATUS_WAIT, stderr_logged).await;
        let _ = status_tx.send(status);
        let _ = done_tx.send(());
    });

    Ok(Connection {
        outbound: out_tx,
        inbound: in_rx,
        closer: super::Closer::Stdio(StdioCloser {
            stop: Some(stop_tx),
            done: Some(done_rx),
        }),
        http: None,
    })
}

fn command(spec: &StdioSpec<'_>) -> Command {
    let mut cmd = Command::new(spec.command);
    cmd.args(spec.args)
        .envs(spec.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Safety net: if the gateway drops the child without the graceful path (a panic, the
        // runtime shutting down), the child is killed rather than orphaned.
        .kill_on_drop(true);
    // A process group of its own, so that stopping the server reaches what it started too
    // (`sh -c "python server.py; true"`, npx, uvx), and so that a terminal's Ctrl-C reaches
    // the gateway alone, which then stops its upstreams in order. See `guard.rs`.
    #[cfg(unix)]
    cmd.process_group(0);
    if let Some(dir) = spec.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

async fn write_loop(
    name: std::sync::Arc<str>,
    mut stdin: ChildStdin,
    mut outbound: mpsc::Receiver<Message>,
    close: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            msg = outbound.recv() => msg,
            _ = close.cancelled() => None,
        };
        let Some(msg) = msg else { break };
        let mut line = msg.to_json();
        line.push('\n');
        if let Err(e) = write_line(&mut stdin, line.as_bytes()).await {
            tracing::debug!(upstream = %name, error = %e, "Upstream stdin closed");
            break;
        }
    }
    // Dropping stdin closes the pipe: the MCP way of asking a stdio server to exit.
    drop(stdin);
}

async fn write_line(stdin: &mut ChildStdin, bytes: &[u8]) -> std::io::Result<()> {
    stdin.write_all(bytes).await?;
    stdin.flush().await
}

async fn read_loop(
    name: std::sync::Arc<str>,
    stdout: tokio::process::ChildStdout,
    inbound: mpsc::Sender<Inbound>,
    mut status: watch::Receiver<Option<ExitStatus>>,
) {
    let mut lines = stdout_lines(stdout, MAX_MESSAGE_BYTES);
    let reason = loop {
        match lines.next().await {
            Some(Ok(line)) => match line_message(&line) {
                None => continue,
                Some(Ok(msg)) => {
                    if inbound.send(Inbound::Message(msg, None)).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(upstream = %name, error = ?e, "Upstream wrote a line that is not a JSON-RPC message")
                }
            },
            Some(Err(e)) => break format!("unreadable output: {e}"),
            None => break String::from("closed its stdout"),
        }
    };
    let exited: Option<ExitStatus> =
        match tokio::time::timeout(EXIT_STATUS_WAIT, status.wait_for(Option::is_some)).await {
            Ok(Ok(s)) => *s,
            _ => None,
        };
    let reason = match exited {
        Some(st) => format!("process exited ({st})"),
        None => format!("process {reason}"),
    };
    let _ = inbound.send(Inbound::Closed(reason)).await;
}

/// A child's stdout as lines of at most `max` bytes (the reader's framing; `upstream::fuzzing`
/// drives it with a small bound).
pub(super) fn stdout_lines<R: AsyncRead>(stdout: R, max: usize) -> FramedRead<R, LinesCodec> {
    FramedRead::new(stdout, LinesCodec::new_with_max_length(max))
}

/// What one stdout line holds: nothing (a blank line), or a message, or what is wrong with it.
pub(super) fn line_message(line: &str) -> Option<Result<Message, ParseError>> {
    if line.trim().is_empty() {
        return None;
    }
    Some(Message::parse(line.as_bytes()))
}

async fn log_stderr(name: std::sync::Arc<str>, stderr: tokio::process::ChildStderr) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    let mut bucket = StderrBucket::new(tokio::time::Instant::now());
    loop {
        // While lines are being dropped, say so at least every STDERR_REPORT_EVERY, even if
        // the server then falls silent.
        let report_at = bucket.report_due();
        let next = tokio::select! {
            line = lines.next() => line,
            _ = tokio::time::sleep_until(report_at.unwrap_or_else(tokio::time::Instant::now)), if report_at.is_some() => {
                report_dropped(&name, &mut bucket, tokio::time::Instant::now());
                continue;
            }
        };
        let Some(line) = next else { break };
        let now = tokio::time::Instant::now();
        if !bucket.take(now) {
            continue;
        }
        if bucket.report_due().is_some_and(|due| now >= due) {
            report_dropped(&name, &mut bucket, now);
        }
        match line {
            Ok(line) => {
                tracing::info!(target: "manifold::upstream::stderr", upstream = %name, "{line}")
            }
            // An over-long line: the codec skips it; keep reading.
            Err(_) => {
                tracing::info!(target: "manifold::upstream::stderr", upstream = %name, "(over-long stderr line cut)")
            }
        }
    }
    report_dropped(&name, &mut bucket, tokio::time::Instant::now());
}

fn report_dropped(name: &str, bucket: &mut StderrBucket, now: tokio::time::Instant) {
    let dropped = bucket.take_dropped(now);
    if dropped > 0 {
        tracing::warn!(target: "manifold::upstream::stderr", upstream = %name, dropped, "Dropped {dropped} stderr lines (more than {STDERR_LINES_PER_SEC} a second)");
    }
}

/// Stderr lines logged per upstream: a burst of [`STDERR_BURST`], then
/// [`STDERR_LINES_PER_SEC`] a second. A server that writes faster has the rest counted and
/// dropped, so it cannot flood the gateway's log (or the disk, or the collector behind it).
pub const STDERR_BURST: u32 = 200;
pub const STDERR_LINES_PER_SEC: u32 = 50;
/// While lines are dropped, how often their count is logged.
const STDERR_REPORT_EVERY: Duration = Duration::from_secs(10);

/// A token bucket of stderr lines, and the count of lines it refused.
struct StderrBucket {
    tokens: f64,
    refilled: tokio::time::Instant,
    dropped: u64,
    reported: tokio::time::Instant,
}

impl StderrBucket {
    fn new(now: tokio::time::Instant) -> Self {
        Self {
            tokens: f64::from(STDERR_BURST),
            refilled: now,
            dropped: 0,
            reported: now,
        }
    }

    /// Whether a line may be logged now; counts it as dropped if not.
    fn take(&mut self, now: tokio::time::Instant) -> bool {
        let earned =
            now.duration_since(self.refilled).as_secs_f64() * f64::from(STDERR_LINES_PER_SEC);
        self.tokens = (self.tokens + earned).min(f64::from(STDERR_BURST));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// When the dropped lines are next due to be reported, if any were dropped.
    fn report_due(&self) -> Option<tokio::time::Instant> {
        (self.dropped > 0).then(|| self.reported + STDERR_REPORT_EVERY)
    }

    /// The lines dropped since the last report, resetting the count.
    fn take_dropped(&mut self, now: tokio::time::Instant) -> u64 {
        if self.dropped > 0 {
            self.reported = now;
        }
        std::mem::take(&mut self.dropped)
    }
}

/// Owns the child until it exits, or until asked to stop: then close stdin, wait, kill.
async fn supervise_child(
    name: &str,
    mut child: Child,
    group: Option<u32>,
    stop: oneshot::Receiver<()>,
    close_stdin: CancellationToken,
) -> Option<ExitStatus> {
    tokio::select! {
        status = child.wait() => {
            let status = status.ok();
            tracing::info!(upstream = %name, status = ?status, "Upstream process exited");
            status
        }
        _ = stop => {
            close_stdin.cancel();
            match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                Ok(status) => status.ok(),
                Err(_) => {
                    tracing::warn!(upstream = %name, "Upstream did not exit after stdin closed; killing it");
                    match group {
                        Some(pgid) => super::guard::kill_group(pgid),
                        None => {
                            let _ = child.start_kill();
                        }
                    }
                    child.wait().await.ok()
                }
            }
        }
    }
}

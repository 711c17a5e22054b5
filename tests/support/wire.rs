//! Seeing more of the wire: SSE events with their ids and event names (for resumption and
//! the handshake `endpoint` event), a tap on a stdio upstream that records every line the
//! gateway sends it and every line it answers, and the conformance fixture server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use super::read_line_with_timeout;

/// One SSE event as sent: its `id:`, `event:` and (joined) `data:` fields.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {}", self.data))
    }

    fn parse(block: &str) -> Option<SseEvent> {
        let (mut id, mut event, mut data) = (None, None, Vec::new());
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.to_owned()),
                "event" => event = Some(value.to_owned()),
                "data" => data.push(value),
                _ => {}
            }
        }
        let data = data.join("\n");
        (!data.trim().is_empty()).then_some(SseEvent { id, event, data })
    }
}

/// An SSE response read event by event, ids and event names kept. Events without data
/// (keep-alive comments, priming events) are skipped.
pub struct RawSse {
    bytes: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
    ended: bool,
}

impl RawSse {
    pub fn new(resp: reqwest::Response) -> RawSse {
        RawSse {
            bytes: resp.bytes_stream().boxed(),
            buf: String::new(),
            ended: false,
        }
    }

    /// The next event; `None` when the stream ended or `limit` passed.
    pub async fn next(&mut self, limit: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.buf = self.buf.replace("\r\n", "\n");
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                match SseEvent::parse(&block) {
                    Some(event) => return Some(event),
                    None => continue,
                }
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.bytes.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Some(Err(_)) | None) => self.ended = true,
            }
        }
    }

    /// Whether the server ended the stream (as opposed to a read that timed out).
    pub fn ended(&self) -> bool {
        self.ended && !self.buf.contains("\n\n")
    }

    /// Waits (at most `limit`) for an event whose JSON data satisfies `pred`; returns it and
    /// every JSON message skipped on the way.
    pub async fn until(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(SseEvent, Vec<Value>)> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next(left).await?;
            let msg = event.json();
            if pred(&msg) {
                return Some((event, skipped));
            }
            skipped.push(msg);
        }
    }
}

/// A recording of a stdio upstream's traffic: `sent` holds every line the gateway wrote to
/// its stdin, `answered` every line it wrote to stdout. Both are appended to as they flow.
pub struct Wiretap {
    pub sent: PathBuf,
    pub answered: PathBuf,
    _dir: tempfile::TempDir,
}

impl Default for Wiretap {
    fn default() -> Self {
        Self::new()
    }
}

impl Wiretap {
    /// A tap whose recordings live in a temporary directory of its own.
    pub fn new() -> Wiretap {
        let dir = tempfile::tempdir().expect("tempdir");
        Wiretap {
            sent: dir.path().join("sent.jsonl"),
            answered: dir.path().join("answered.jsonl"),
            _dir: dir,
        }
    }

    /// YAML for a stdio upstream `upstream` running `program args…` behind this tap (a
    /// `sh` pipeline: `tee` | program | `tee`).
    pub fn upstream_yaml(&self, upstream: &str, program: &Path, args: &[&str]) -> String {
        let script =
            r#"sent="$1"; answered="$2"; shift 2; tee -a "$sent" | "$@" | tee -a "$answered""#;
        let mut all = vec![
            "-c".to_owned(),
            script.to_owned(),
            "sh".to_owned(),
            self.sent.display().to_string(),
            self.answered.display().to_string(),
            program.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        format!("  {upstream}:\n    command: \"sh\"\n    args: {all:?}\n")
    }

    /// The JSON messages the gateway sent the upstream so far.
    pub fn sent(&self) -> Vec<Value> {
        read_jsonl(&self.sent)
    }

    /// The first message the gateway sent the upstream that `pred` accepts, polled for at
    /// most [`super::WAIT`]. Polled, not read once: `tee` writes a line to the upstream
    /// before it appends it to `sent`, so the answer to a request can reach the test before
    /// the request's line is in the file.
    pub async fn first_sent(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        super::mcp::wait_for(super::WAIT, what, || async {
            self.sent().into_iter().find(|m| pred(m))
        })
        .await
    }

    /// The JSON messages the upstream wrote so far.
    pub fn answered(&self) -> Vec<Value> {
        read_jsonl(&self.answered)
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Path of the conformance fixture server (an example target; `cargo test` builds it).
pub fn conformance_bin() -> PathBuf {
    super::example_bin("conformance_server")
}

/// YAML for the conformance fixture as a stdio upstream `name` with the given prefix.
///
/// Pinned to the handshake era (`protocol: handshake`): the fixture speaks both, and these
/// tests show the relay of real server→client requests; the 2026-07-28 paths have their
/// own tests (`tests/eras.rs`, `tests/translation.rs`).
pub fn conformance_upstream(name: &str, prefix: &str) -> String {
    format!(
        "  {name}:\n    command: {:?}\n    args: [\"--transport\", \"stdio\"]\n    prefix: {prefix:?}\n    protocol: handshake\n",
        conformance_bin().display().to_string()
    )
}

/// The conformance fixture serving Streamable HTTP on a free loopback port; killed when
/// dropped.
pub struct ConformanceHttp {
    child: Child,
    pub url: String,
}

impl ConformanceHttp {
    pub fn start() -> ConformanceHttp {
        let mut child = Command::new(conformance_bin())
            .args(["--transport", "http", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn conformance_server (built by cargo test as an example)");
        let stdout = child.stdout.take().expect("stdout");
        let line = read_line_with_timeout(stdout, "LISTENING ")
            .expect("conformance_server announces its address");
        ConformanceHttp {
            child,
            url: line.trim_start_matches("LISTENING ").trim().to_owned(),
        }
    }
}

impl Drop for ConformanceHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

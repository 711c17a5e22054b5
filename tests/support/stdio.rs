//! `manifold stdio` as a child process: one MCP client on stdin/stdout, principal `local`.
//! Tests use it as a second principal next to HTTP clients (`anonymous`).

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::{VERSION, WAIT, hermetic, manifold_bin, within};

/// Starts `manifold stdio` on `yaml` with piped stdin/stdout; stderr goes to
/// `<dir>/stderr.log`. The child is killed when dropped.
pub fn spawn_stdio(yaml: &str) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
    let mut cmd = hermetic(manifold_bin());
    cmd.args(["stdio", "--config"])
        .arg(&config)
        .env("MANIFOLD_LOG", "info,manifold=debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    let child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn manifold stdio");
    (child, dir)
}

pub struct StdioClient {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    pub dir: tempfile::TempDir,
}

impl StdioClient {
    /// Starts `manifold stdio` on `yaml` without sending anything.
    pub fn spawn(yaml: &str) -> StdioClient {
        let (mut child, dir) = spawn_stdio(yaml);
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        StdioClient {
            _child: child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 1,
            dir,
        }
    }

    /// Starts `manifold stdio` on `yaml` and initializes the session.
    pub async fn start(yaml: &str) -> StdioClient {
        let mut client = Self::spawn(yaml);
        let init = json!({
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "manifold-tests", "version": "0"},
        });
        client
            .request("initialize", init)
            .await
            .unwrap_or_else(|e| panic!("initialize failed: {e}"));
        client
            .write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        client
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The next message manifold writes, at most `limit` from now.
    pub async fn next_message(&mut self, limit: std::time::Duration) -> Option<Value> {
        let line = tokio::time::timeout(limit, self.lines.next_line())
            .await
            .ok()?
            .ok()??;
        Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
    }

    /// Writes one message as a line.
    pub async fn write(&mut self, msg: &Value) {
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    /// Sends a request and reads lines (skipping notifications) until its response:
    /// `Ok(result)` or `Err(error)`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        for _ in 0..10_000 {
            let line = within(WAIT, "a line from manifold stdio", self.lines.next_line())
                .await
                .expect("read stdout")
                .unwrap_or_else(|| panic!("stdout closed; stderr:\n{}", self.log()));
            let msg: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return match msg.get("result") {
                    Some(r) => Ok(r.clone()),
                    None => Err(msg["error"].clone()),
                };
            }
        }
        panic!("no response to {method}");
    }

    /// Follows `nextCursor` to the end; returns the `key` of every item.
    pub async fn list_keys(&mut self, method: &str, field: &str, key: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
            let page = self
                .request(method, params)
                .await
                .unwrap_or_else(|e| panic!("{method} failed: {e}"));
            keys.extend(
                page[field]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|i| i[key].as_str().expect("key").to_owned()),
            );
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return keys,
            }
        }
        panic!("{method}: more than 1000 pages");
    }
}

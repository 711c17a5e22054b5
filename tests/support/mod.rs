//! Test support: start the real `manifold` binary on a free loopback port with a temporary
//! config, start real upstream servers (the rmcp fixture server, the built-in demo), and talk
//! to the gateway with a real MCP client (rmcp) or raw HTTP.
#![allow(dead_code)]

mod cluster;
mod mcp;
mod stateless;
mod stdio;
mod wire;

#[allow(unused_imports)]
pub use cluster::*;
pub use mcp::*;
#[allow(unused_imports)]
pub use stateless::*;
#[allow(unused_imports)]
pub use stdio::*;
// Not every test crate uses these.
#[allow(unused_imports)]
pub use wire::*;

/// The throwaway `redis-server` of the unit tests, for the cluster harness.
#[path = "../../src/session/tasks/store/test_redis.rs"]
pub mod test_redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on any wait in these tests, so a broken build fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(30);

/// Path of the gateway binary under test.
pub fn manifold_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_manifold"))
}

/// Path of the rmcp fixture server (an example target; `cargo test` builds examples).
pub fn fixture_bin() -> PathBuf {
    example_bin("fixture_server")
}

/// The tools `fixture_server --tools n` lists, in its order.
pub fn fixture_tools(n: usize) -> Vec<String> {
    let fixed = [
        "whoami",
        "echo",
        "slow",
        "crash",
        "add_tool",
        "remove_tool",
        "fail",
        "envelope",
        "journal",
        "touch",
    ];
    (0..n)
        .map(|i| format!("tool_{i}"))
        .chain(fixed.map(String::from))
        .collect()
}

/// Path of an example binary used as a test peer. `cargo test` compiles examples but does
/// not leave their executables where tests can run them, so `scripts/test` runs
/// `cargo build --examples` first; run that too when invoking `cargo test` by hand.
pub fn example_bin(name: &str) -> PathBuf {
    let bin = manifold_bin();
    let path = bin
        .parent()
        .expect("target dir")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples` (scripts/test does) before `cargo test`",
        path.display()
    );
    path
}

/// A running gateway process, stopped (SIGTERM, then kill) when dropped.
pub struct Gateway {
    child: Option<Child>,
    /// The MCP endpoint, e.g. `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub dir: tempfile::TempDir,
    log: PathBuf,
}

impl Gateway {
    /// Writes `yaml` to a temporary `gateway.yaml` and serves it on `127.0.0.1:0`.
    pub fn start(yaml: &str) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).expect("write config");
        Self::start_with(dir, &config, &[])
    }

    /// Starts the gateway on an existing config file, with extra environment.
    pub fn start_with(dir: tempfile::TempDir, config: &Path, env: &[(&str, &str)]) -> Gateway {
        Self::start_args(dir, config, env, &[])
    }

    /// [`Gateway::start_with`] with extra `serve` arguments.
    pub fn start_args(
        dir: tempfile::TempDir,
        config: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Gateway {
        let log = dir.path().join("gateway.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = hermetic(manifold_bin())
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("MANIFOLD_LOG", "info,manifold=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn manifold");
        let stdout = child.stdout.take().expect("stdout");
        let line = read_line_with_timeout(stdout, "manifold listening on ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "gateway did not announce its address; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let url = line
            .trim_start_matches("manifold listening on ")
            .trim()
            .to_owned();
        // Scheme and authority only: the endpoint path may have several segments.
        let authority_end = url
            .find("://")
            .map(|i| i + 3)
            .and_then(|i| url[i..].find('/').map(|j| i + j));
        let base = url[..authority_end.expect("url has a path")].to_owned();
        Gateway {
            child: Some(child),
            url,
            base,
            dir,
            log,
        }
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it holds `text` (polled for at most [`WAIT`]); panics with the log, saying
    /// what it waited for, if it never does. A line can reach the file a little after what
    /// it reports is visible over HTTP: the gateway buffers log lines per runtime thread
    /// until the thread goes idle (`telemetry::stderr`), and two threads' lines can land in
    /// either order.
    pub async fn log_with(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            if Instant::now() >= deadline {
                panic!("the gateway never logged {text:?} in {WAIT:?}; log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (no drain) and reaps it; `None` if it was not running.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// `GET /readyz`: the status code and the JSON body.
    pub async fn readyz(&self) -> (u16, serde_json::Value) {
        let resp = http_client()
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("GET /readyz");
        let status = resp.status().as_u16();
        let body = resp.json().await.expect("/readyz body is JSON");
        (status, body)
    }

    /// The `/metrics` exposition text.
    pub async fn metrics(&self) -> String {
        http_client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of the first series whose line starts with `series` (its name and labels as
    /// written, e.g. `manifold_x_total{limit="max"}`), if there is one.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        self.metrics()
            .await
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Waits (bounded) until `/readyz` answers 200; returns its body.
    pub async fn wait_ready(&self) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let (status, body) = self.readyz().await;
            if status == 200 {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "gateway not ready after {WAIT:?}: {last}\nlog:\n{}",
            self.log()
        );
    }

    /// Waits (bounded) until every upstream named in `/readyz` is `ready`, whatever else
    /// (collisions, say) keeps the gateway as a whole unready; returns the body.
    pub async fn wait_upstreams_ready(&self) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let (_, body) = self.readyz().await;
            let all = body["upstreams"]
                .as_object()
                .is_some_and(|m| m.values().all(|u| u["status"] == "ready"));
            if all {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "upstreams not ready after {WAIT:?}: {last}\nlog:\n{}",
            self.log()
        );
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A command for `program` that inherits no `MANIFOLD_*` or `RUST_LOG` settings from the
/// environment the tests run in: every test states the configuration it depends on.
pub fn hermetic(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let upper = name.to_string_lossy().to_ascii_uppercase();
        if upper.starts_with("MANIFOLD_") || upper == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Reads lines from `out` on a thread until one starts with `prefix`, at most [`WAIT`]. The
/// rest of the stream is drained in the background so the child never blocks on a full pipe.
pub fn read_line_with_timeout(
    out: impl std::io::Read + Send + 'static,
    prefix: &str,
) -> Option<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if !found && line.starts_with(&prefix) {
                found = true;
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(WAIT).ok()
}

/// A fixture server serving Streamable HTTP on a free loopback port; killed when dropped.
pub struct HttpFixture {
    child: Child,
    pub url: String,
}

impl HttpFixture {
    pub fn start(name: &str, extra: &[&str]) -> HttpFixture {
        Self::start_on(name, 0, extra)
    }

    /// Starts on a given port (0 = any free one), e.g. to replace a fixture that was stopped.
    pub fn start_on(name: &str, port: u16, extra: &[&str]) -> HttpFixture {
        let mut child = Command::new(fixture_bin())
            .args([
                "--name",
                name,
                "--transport",
                "http",
                "--port",
                &port.to_string(),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fixture_server (built by cargo test as an example)");
        let stdout = child.stdout.take().expect("stdout");
        let line =
            read_line_with_timeout(stdout, "LISTENING ").expect("fixture announces its address");
        HttpFixture {
            child,
            url: line.trim_start_matches("LISTENING ").trim().to_owned(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        let after = self.url.trim_start_matches("http://127.0.0.1:");
        after
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the fixture URL")
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// YAML for a stdio fixture upstream named `name` with extra CLI args.
pub fn stdio_fixture(name: &str, args: &[&str]) -> String {
    stdio_fixture_as(name, name, args)
}

/// YAML for a stdio upstream `upstream` running a fixture that calls itself `name`.
pub fn stdio_fixture_as(upstream: &str, name: &str, args: &[&str]) -> String {
    let mut all = vec!["--name".to_owned(), name.to_owned()];
    all.extend(args.iter().map(|s| s.to_string()));
    format!(
        "  {upstream}:\n    command: {:?}\n    args: {:?}\n",
        fixture_bin().display().to_string(),
        all
    )
}

/// Sends a signal (`TERM`, `KILL`, ...) to a process.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// State and parent of a process from `/proc/PID/stat`, `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The live child processes of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| proc_stat(p).is_some_and(|(state, ppid)| ppid == pid && state != 'Z'))
        .collect()
}

/// Whether a process exists and has not exited (a zombie has exited).
pub fn is_running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// YAML for an upstream running the built-in demo server (`manifold demo`), by path.
pub fn demo_upstream(name: &str) -> String {
    format!(
        "  {name}:\n    command: {:?}\n    args: [\"demo\"]\n",
        manifold_bin().display().to_string()
    )
}

/// server-everything (the TypeScript reference server) from `.interop/` (installed by
/// `scripts/interop --install-only`, which `scripts/test` runs first).
pub fn everything_script() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script =
        root.join(".interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        script.is_file(),
        "{} is missing: run `scripts/interop --install-only` (scripts/test does)",
        script.display()
    );
    script
}

/// YAML for server-everything over stdio.
pub fn everything_upstream() -> String {
    let script = everything_script();
    format!(
        "  everything:\n    command: node\n    args: [{:?}, stdio]\n    protocol: handshake\n",
        script.display().to_string()
    )
}

/// YAML for a Streamable HTTP upstream.
pub fn http_upstream(name: &str, url: &str) -> String {
    format!("  {name}:\n    url: {url:?}\n")
}

/// Installs the TLS provider reqwest needs (it is built without a default one).
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

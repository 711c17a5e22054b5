//! What running a tool call as a task costs through the gateway, against the same upstream
//! called directly and the same call through the gateway without a task, in one run.
//!
//! Processes: the rmcp fixture server on Streamable HTTP and two `manifold serve` gateways in
//! front of it: A with the upstream plain, B with `tool_tasks: {whoami: always}`. The fixture
//! runs no tasks, so the gateway wraps every one. Both keep tasks 1 s (`tasks.default_ttl`)
//! with no per-principal limit in reach: the memory store sweeps expired records on every
//! access, so with the default hour the store's size, not the task, would be measured.
//!
//! Client: raw JSON-RPC over HTTP (reqwest, keep-alive), one client per target, sequential;
//! ITERS iterations per target in ROUNDS rounds visiting the targets in alternating order,
//! after WARMUP. A `tasks/result` not answered within STALL counts as a stall and is left out
//! of the latencies (the task ended while the request was looking it up, and the waiter
//! missed the wake-up). Run with `scripts/bench`; without `--bench` it does nothing.
//!
//! When `MANIFOLD_BASELINE` names another `manifold` binary (`scripts/bench --baseline REV`),
//! gateways A and B are also started with it and every gateway target gets a twin
//! `NAME@base` on them, visited right after it in the same rounds; a current / baseline table
//! follows (mean, p50, and the lowest and highest per-round ratio of the means).
//! `MANIFOLD_BASELINE_LABEL` names the baseline in the header; `BENCH_SCALE` (default 1)
//! multiplies WARMUP and ITERS. Without these variables the run and its output are as before.

#[path = "common/scale.rs"]
mod scale;

use scale::scaled;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WARMUP: usize = 50;
const ITERS: usize = 400;
const ROUNDS: usize = 10;
const WAIT: Duration = Duration::from_secs(30);
const STALL: Duration = Duration::from_secs(1);
const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";
const TOOL: &str = "bench__whoami";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Direct,
    Call,
    Task25,
    Task26,
}

const TARGETS: [(&str, Kind); 4] = [
    ("direct", Kind::Direct),
    ("gw-call", Kind::Call),
    ("gw-task-25", Kind::Task25),
    ("gw-task-26", Kind::Task26),
];
const ABOUT: &str = "  direct     2025-11-25 session → fixture: tools/call whoami
  gw-call    2025-11-25 session → gateway A → fixture: the same
  gw-task-25 2025-11-25 session → gateway A: tools/call with task: {}, then tasks/result
  gw-task-26 2026-07-28 client, tasks extension → gateway B (whoami: always): tools/call,
             then tasks/get without pause until completed
";
const NOTES: &str = "
×direct = mean / direct mean; create = call → CreateTaskResult (c. p50 its median);
polls = tasks/get per task; stalls = tasks/result unanswered within 1 s, not in the latencies
";
const BASE_NOTES: &str = "current / baseline: a target on this build against its @base twin \
on the baseline build, in the same rounds
(>1 is slower); rounds = lowest–highest ratio of the two means in a single round
";

/// One row of the table: a target of [`TARGETS`], or (`twin_of`) the same on the baseline.
struct Target {
    name: String,
    kind: Kind,
    url: String,
    /// For a target on the baseline binary: the index of its twin on the current one.
    twin_of: Option<usize>,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("tasks: skipped (run it with scripts/bench or cargo bench)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let manifold = PathBuf::from(env!("CARGO_BIN_EXE_manifold"));
    let release = manifold.parent().expect("binary directory").to_path_buf();
    let fixture = release.join("examples").join("fixture_server");
    assert!(fixture.is_file(), "no fixture_server: run scripts/bench");
    let out_file = release.parent().expect("target").join("bench-tasks.txt");
    let dir = tempfile::tempdir().expect("temporary directory");
    let load_start = loadavg();

    let baseline = std::env::var_os("MANIFOLD_BASELINE").filter(|v| !v.is_empty());
    let baseline = baseline.map(PathBuf::from);
    if let Some(path) = &baseline {
        assert!(path.is_file(), "MANIFOLD_BASELINE={path:?}: no such file");
    }
    let (warmup, iters) = (scaled(WARMUP, 1), scaled(ITERS, ROUNDS));

    let args = ["--name", "bench", "--transport", "http", "--port", "0"];
    let log = dir.path().join("fixture.log");
    let (_up, direct) = Proc::spawn(Command::new(&fixture).args(args), &log, "LISTENING ");
    let tasks = "tasks: {default_ttl: 1s, max_per_principal: 1000000}\n";
    let plain = format!("{tasks}upstreams:\n  bench:\n    url: {direct:?}\n");
    let (_a, url_a) = gateway(&manifold, dir.path(), "a", &plain);
    let always = format!("{plain}    tool_tasks: {{whoami: always}}\n");
    let (_b, url_b) = gateway(&manifold, dir.path(), "b", &always);
    // The same two configurations on the baseline binary.
    let based = baseline.as_ref().map(|bin| {
        let (a, url_a) = gateway(bin, dir.path(), "a@base", &plain);
        let (b, url_b) = gateway(bin, dir.path(), "b@base", &always);
        ([a, b], [url_a, url_b])
    });
    let mut targets = Vec::new();
    for ((name, kind), url) in TARGETS.iter().zip([&direct, &url_a, &url_a, &url_b]) {
        let twin_of = targets.len();
        targets.push(Target {
            name: (*name).to_owned(),
            kind: *kind,
            url: url.clone(),
            twin_of: None,
        });
        if let Some((_, [base_a, base_b])) = &based
            && *kind != Kind::Direct
        {
            targets.push(Target {
                name: format!("{name}@base"),
                kind: *kind,
                url: if *kind == Kind::Task26 {
                    base_b
                } else {
                    base_a
                }
                .clone(),
                twin_of: Some(twin_of),
            });
        }
    }

    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let samples = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("reqwest");
        for t in targets.iter().filter(|t| t.kind != Kind::Direct) {
            wait_ready(&http, &t.url).await;
        }
        let mut clients = Vec::new();
        for t in &targets {
            let mut rpc = Rpc::default();
            (rpc.http, rpc.url) = (http.clone(), t.url.clone());
            rpc.stateless = t.kind == Kind::Task26;
            if !rpc.stateless {
                rpc.initialize().await;
            }
            for _ in 0..warmup {
                once(t.kind, &mut rpc).await;
            }
            clients.push(rpc);
        }
        let mut samples: Vec<Vec<Sample>> = targets.iter().map(|_| Vec::new()).collect();
        for round in 0..ROUNDS {
            for j in 0..targets.len() {
                let i = [j, targets.len() - 1 - j][round % 2];
                for _ in 0..iters / ROUNDS {
                    samples[i].push(once(targets[i].kind, &mut clients[i]).await);
                }
            }
        }
        samples
    });
    drop(runtime);
    drop(based);

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let (commit, load_end) = (run("git", &["describe", "--always", "--dirty"]), loadavg());
    let width = targets
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut text = format!(
        "Manifold task benchmark, {date}, commit {commit}\n  {cpus} CPUs, load average \
         {load_start} at start, {load_end} at end\n  {iters} iterations per target in \
         {ROUNDS} interleaved rounds after {warmup} warm-up; raw JSON-RPC over HTTP, \
         keep-alive\n{ABOUT}"
    );
    if let Some(path) = &baseline {
        let _ = writeln!(
            text,
            "  …@base     the same on the baseline build (gateways A and B started with it)"
        );
        let _ = writeln!(
            text,
            "  current:  {}, commit {commit}",
            fingerprint(&manifold)
        );
        let label = std::env::var("MANIFOLD_BASELINE_LABEL").unwrap_or_default();
        let label = if label.is_empty() {
            label
        } else {
            format!(", {label}")
        };
        let _ = writeln!(text, "  baseline: {}{label}", fingerprint(path));
    }
    let _ = writeln!(
        text,
        "\n  {:<width$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "target",
        "mean µs",
        "p50 µs",
        "p99 µs",
        "×direct",
        "create µs",
        "c. p50",
        "polls",
        "stalls"
    );
    let base = stats(samples[0].iter().map(|s| s.total)).0;
    for (t, s) in targets.iter().zip(&samples) {
        let (name, kind) = (&t.name, t.kind);
        let ok: Vec<&Sample> = s.iter().filter(|s| !s.stalled).collect();
        let (mean, p50, p99) = stats(ok.iter().map(|s| s.total));
        let r = mean / base;
        let _ = write!(
            text,
            "  {name:<width$} {mean:>9.0} {p50:>9.0} {p99:>9.0} {r:>9.2}"
        );
        if matches!(kind, Kind::Task25 | Kind::Task26) {
            let (cmean, c50, _) = stats(s.iter().map(|s| s.create));
            let polls = ok.iter().map(|s| s.polls).sum::<usize>() as f64 / ok.len() as f64;
            let polls = match kind {
                Kind::Task26 => format!("{polls:.2}"),
                _ => "—".to_owned(),
            };
            let stalls = s.len() - ok.len();
            let _ = writeln!(text, " {cmean:>9.0} {c50:>9.0} {polls:>9} {stalls:>6}");
        } else {
            text.push_str("         —         —         —      —\n");
        }
    }
    if baseline.is_some() {
        compare(&mut text, &targets, &samples, iters / ROUNDS);
    }
    text.push_str(NOTES);
    if baseline.is_some() {
        text.push_str(BASE_NOTES);
    }
    print!("{text}");
    std::fs::write(&out_file, &text).expect("write the report");
    println!("written to {}", out_file.display());
}

/// Appends the current / baseline table: each target on this build against its `@base` twin,
/// mean and p50 of the total time, with the lowest and highest per-round ratio of the means
/// (`per_round` samples per target per round, in round order).
fn compare(text: &mut String, targets: &[Target], samples: &[Vec<Sample>], per_round: usize) {
    let width = targets
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let _ = writeln!(text, "\n  current / baseline");
    let _ = writeln!(
        text,
        "  {:<width$} {:>9} {:>9} {:>6} │ {:>9} {:>9} {:>6} │ {:>11}",
        "target", "mean µs", "base µs", "×mean", "p50 µs", "base µs", "×p50", "rounds"
    );
    let ok = |s: &[Sample]| {
        s.iter()
            .filter(|s| !s.stalled)
            .map(|s| s.total)
            .collect::<Vec<_>>()
    };
    for (b, twin) in targets.iter().enumerate() {
        let Some(c) = twin.twin_of else { continue };
        let (cur, base) = (
            stats(ok(&samples[c]).into_iter()),
            stats(ok(&samples[b]).into_iter()),
        );
        let rounds = samples[c]
            .chunks(per_round.max(1))
            .zip(samples[b].chunks(per_round.max(1)))
            .map(|(cur, base)| stats(ok(cur).into_iter()).0 / stats(ok(base).into_iter()).0)
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            });
        let _ = writeln!(
            text,
            "  {:<width$} {:>9.0} {:>9.0} {:>6.3} │ {:>9.0} {:>9.0} {:>6.3} │ {:>5.3}–{:<5.3}",
            targets[c].name,
            cur.0,
            base.0,
            cur.0 / base.0,
            cur.1,
            base.1,
            cur.1 / base.1,
            rounds.0,
            rounds.1
        );
    }
}

/// A binary's path and the first 12 hex digits of its SHA-256.
fn fingerprint(binary: &Path) -> String {
    let digest = run("sha256sum", &[&binary.to_string_lossy()]);
    format!(
        "{} (sha256 {}…)",
        binary.display(),
        digest.get(..12).unwrap_or("?")
    )
}

#[derive(Default)]
struct Sample {
    total: Duration,
    create: Duration,
    polls: usize,
    stalled: bool,
}

/// Mean, p50 and p99 (nearest rank) in µs.
fn stats(samples: impl Iterator<Item = Duration>) -> (f64, f64, f64) {
    let mut us: Vec<f64> = samples.map(|d| d.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let n = us.len().max(1);
    let at = |q: f64| us.get(((q * n as f64).ceil() as usize).clamp(1, n) - 1);
    let mean = us.iter().sum::<f64>() / n as f64;
    (mean, *at(0.5).unwrap_or(&0.0), *at(0.99).unwrap_or(&0.0))
}

/// One measured iteration of `kind`.
async fn once(kind: Kind, c: &mut Rpc) -> Sample {
    let t0 = Instant::now();
    let mut sample = Sample::default();
    let name = if kind == Kind::Direct { "whoami" } else { TOOL };
    let mut call = json!({"name": name, "arguments": {}});
    if kind == Kind::Task25 {
        call["task"] = json!({});
    }
    let answer = c.ok("tools/call", call).await;
    sample.create = t0.elapsed();
    match kind {
        Kind::Direct | Kind::Call => check(&answer),
        Kind::Task25 => {
            let id = &answer["task"]["taskId"];
            let result = c
                .request("tasks/result", json!({"taskId": id}), STALL)
                .await;
            sample.stalled = result.is_none();
            if let Some(result) = &result {
                check(result);
            }
        }
        Kind::Task26 => {
            assert_eq!(answer["resultType"], "task", "{answer}");
            loop {
                sample.polls += 1;
                let task = c.ok("tasks/get", json!({"taskId": answer["taskId"]})).await;
                match task["status"].as_str() {
                    Some("completed") => break check(&task["result"]),
                    Some("working") => {}
                    _ => panic!("task: {task}"),
                }
            }
        }
    }
    sample.total = t0.elapsed();
    sample
}

fn check(result: &Value) {
    let text = result["content"][0]["text"].as_str();
    let ok = result["isError"] != json!(true) && text.is_some_and(|t| t.contains("bench"));
    assert!(ok, "whoami answered {result}");
}

/// A JSON-RPC client: a 2025-11-25 session once initialized, or (`stateless`) a 2026-07-28
/// client declaring the tasks extension on every request.
#[derive(Default)]
struct Rpc {
    http: reqwest::Client,
    url: String,
    stateless: bool,
    session: Option<String>,
    id: u64,
}

impl Rpc {
    async fn initialize(&mut self) {
        let info = json!({"name": "manifold-bench", "version": "0"});
        let params = json!({"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": info});
        self.ok("initialize", params).await;
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let done = self
            .post(&note, WAIT)
            .await
            .expect("notifications/initialized");
        assert!(done.status().is_success(), "initialized: {}", done.status());
    }

    /// POSTs `body` with this client's headers; `None` if no answer came within `limit`.
    async fn post(&self, body: &Value, limit: Duration) -> Option<reqwest::Response> {
        let (method, params) = (body["method"].as_str().unwrap_or_default(), &body["params"]);
        let mut req = self.http.post(&self.url).timeout(limit);
        req = req.header("accept", "application/json, text/event-stream");
        if let Some(session) = &self.session {
            req = req.header("mcp-session-id", session);
            req = req.header("mcp-protocol-version", LEGACY);
        } else if self.stateless {
            let name = params["name"].as_str().or(params["taskId"].as_str());
            req = req.header("MCP-Protocol-Version", MODERN);
            req = req.header("Mcp-Method", method);
            req = req.header("Mcp-Name", name.unwrap_or_default());
        }
        match req.json(body).send().await {
            Err(e) if e.is_timeout() => None,
            other => Some(other.unwrap_or_else(|e| panic!("{method}: {e}"))),
        }
    }

    /// A request that must succeed within WAIT.
    async fn ok(&mut self, method: &str, params: Value) -> Value {
        self.request(method, params, WAIT).await.expect(method)
    }

    /// One request's result (an error panics); `None` if it took over `limit`. Answers may be
    /// JSON or an SSE stream.
    async fn request(&mut self, method: &str, mut params: Value, limit: Duration) -> Option<Value> {
        self.id += 1;
        if self.stateless {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities":
                    {"extensions": {"io.modelcontextprotocol/tasks": {}}},
                "io.modelcontextprotocol/clientInfo": {"name": "manifold-bench", "version": "0"},
            });
        }
        let body = json!({"jsonrpc": "2.0", "id": self.id, "method": method, "params": params});
        let resp = self.post(&body, limit).await?;
        if method == "initialize" {
            let session = resp.headers().get("mcp-session-id").map(|v| v.to_str());
            self.session = Some(session.expect("Mcp-Session-Id").expect("ASCII").to_owned());
        }
        let text = match resp.text().await {
            Err(e) if e.is_timeout() => return None,
            other => other.unwrap_or_else(|e| panic!("{method}: {e}")),
        };
        let data = text.lines().filter_map(|l| l.strip_prefix("data:"));
        let msg = data.chain([text.as_str()]).find_map(|s| {
            let msg: Value = serde_json::from_str(s.trim()).ok()?;
            (msg["id"] == self.id).then_some(msg)
        });
        let msg = msg.unwrap_or_else(|| panic!("{method}: no response in {text}"));
        let result = msg.get("result").cloned();
        Some(result.unwrap_or_else(|| panic!("{method} failed: {msg}")))
    }
}

/// Polls `/readyz` next to the MCP endpoint `url` until it answers 200.
async fn wait_ready(http: &reqwest::Client, url: &str) {
    let base = url.strip_suffix("/mcp").expect("endpoint path is /mcp");
    let deadline = Instant::now() + WAIT;
    while !matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200) {
        assert!(Instant::now() < deadline, "{base} not ready in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Proc {
    /// Spawns `cmd` (stderr to `log`); waits for its stdout line starting with `prefix`.
    fn spawn(cmd: &mut Command, log: &Path, prefix: &'static str) -> (Proc, String) {
        let stderr = std::fs::File::create(log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut proc = Proc(cmd.stderr(stderr).spawn().expect("spawn"));
        let stdout = proc.0.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining stdout, so the child never blocks on the pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(prefix) {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let rest = rx.recv_timeout(WAIT);
        let log = || std::fs::read_to_string(log).unwrap_or_default();
        let rest = rest.unwrap_or_else(|_| panic!("no `{prefix}` line; log:\n{}", log()));
        (proc, rest)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `manifold serve` on a free loopback port with `yaml` as its config and an empty
/// environment (no MANIFOLD_* or RUST_LOG); the guard and its MCP endpoint.
fn gateway(manifold: &Path, dir: &Path, name: &str, yaml: &str) -> (Proc, String) {
    let config = dir.join(format!("gateway-{name}.yaml"));
    std::fs::write(&config, yaml).expect("write gateway config");
    let mut cmd = Command::new(manifold);
    cmd.env_clear().arg("serve").arg("--config").arg(&config);
    cmd.args(["--listen", "127.0.0.1:0"]);
    let log = dir.join(format!("gateway-{name}.log"));
    Proc::spawn(&mut cmd, &log, "manifold listening on ")
}

fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().next().unwrap_or("?").to_owned()
}

/// The trimmed stdout of `program args` run in the crate directory ("" if it failed).
fn run(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    let out = cmd
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let out = out.ok().filter(|o| o.status.success()).map(|o| o.stdout);
    String::from_utf8_lossy(&out.unwrap_or_default())
        .trim()
        .to_owned()
}

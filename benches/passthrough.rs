//! What the gateway adds to a tool call, as a ratio against the same upstream called directly,
//! measured in one run so both sides see the same machine load.
//!
//! Processes: the rmcp fixture server (`examples/fixture_server`) on Streamable HTTP, and three
//! `manifold serve` gateways in front of it: an HTTP upstream answered as SSE streams
//! (`response_mode: stream`, the default), the same answered as plain JSON (`response_mode:
//! auto`), and a stdio upstream (a fixture child of the gateway). The stdio gateway has no
//! direct counterpart an HTTP client could call, so it is reported in absolute figures only.
//!
//! Client: rmcp over Streamable HTTP, protocol 2025-11-25 on every target. Per target:
//! 200 warm-up calls, then 2000 sequential `tools/call whoami`, a concurrency run (8 clients ×
//! 500 calls) and 500 sequential `tools/list` (the gateway answers those from its cache). Each
//! measurement is split into rounds that visit the targets in alternating order (A B C D,
//! D C B A, …) so drift in machine load cancels out. The whole suite runs twice: with
//! keep-alive connections (what long-lived clients do), then with a new connection per request
//! (the policy of rmcp's default client, `from_uri`).
//!
//! A latency stuck near 44 ms is Nagle's algorithm meeting a delayed ACK: a server without
//! TCP_NODELAY that writes an SSE answer in pieces (priming event, message, end of stream) holds
//! the later pieces until the client ACKs the first, which Linux delays by ~40 ms once a
//! connection is past its first few segments. Fresh connections are still in quick-ACK mode,
//! so the stall shows on keep-alive connections, and on the gateway's own (pooled) connections
//! to an HTTP upstream whichever policy the client uses.
//!
//! Run with `scripts/bench` (it builds the release binaries and the fixture example first, which
//! `cargo bench --bench passthrough` alone does not). The table goes to stdout and to
//! `target/bench-passthrough.txt`. Every process started here is stopped by a guard, also when
//! the bench panics. Under `cargo test` (no `--bench` argument) the bench does nothing.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::{
    ClientCacheConfig, ClientLifecycleMode, ClientServiceExt as _, Peer, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt as _};

/// The API key of the `gw-full` gateway, and its SHA-256 as the config stores it.
const BENCH_KEY: &str = "bench-key";
const BENCH_KEY_SHA256: &str = "b0962662e937d44c699c8305d90cbf190b3150c59b13863d1380b5cc3c711bb7";
const WARMUP: usize = 200;
const SEQ_CALLS: usize = 2000;
const SEQ_ROUNDS: usize = 10;
const CONC_CLIENTS: usize = 8;
const CONC_CALLS: usize = 500;
const CONC_ROUNDS: usize = 5;
const LIST_CALLS: usize = 500;
const LIST_ROUNDS: usize = 5;
/// Upper bound on every startup wait and on each single request.
const WAIT: Duration = Duration::from_secs(30);

type Client = RunningService<RoleClient, ClientConfig>;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("passthrough: skipped (run it with scripts/bench or cargo bench)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();

    let manifold = PathBuf::from(env!("CARGO_BIN_EXE_manifold"));
    let release_dir = manifold.parent().expect("binary directory").to_path_buf();
    let fixture = release_dir.join("examples").join("fixture_server");
    assert!(
        fixture.is_file(),
        "{} is missing: `cargo bench` does not build examples; run scripts/bench, or \
         `cargo build --release --examples` first",
        fixture.display()
    );
    let out_file = release_dir
        .parent()
        .expect("target directory")
        .join("bench-passthrough.txt");
    let dir = tempfile::tempdir().expect("temporary directory");
    let load_start = loadavg();

    // Declared before the runtime, so on any exit (or unwinding panic) the clients go first,
    // then the gateways, then the fixture they call.
    let (_upstream, fixture_url) = Proc::spawn(
        "fixture",
        Command::new(&fixture).args(["--name", "bench", "--transport", "http", "--port", "0"]),
        &dir.path().join("fixture.log"),
        "LISTENING ",
    );
    let http_upstream = format!("upstreams:\n  bench:\n    url: {fixture_url:?}\n");
    let stdio_upstream = format!(
        "upstreams:\n  bench:\n    command: {:?}\n    args: [\"--name\", \"bench\"]\n",
        fixture.display().to_string()
    );
    let (_gw_stream, stream_url) = gateway(&manifold, dir.path(), "stream", &http_upstream);
    let (_gw_auto, auto_url) = gateway(
        &manifold,
        dir.path(),
        "auto",
        &format!("response_mode: auto\n{http_upstream}"),
    );
    let (_gw_stdio, stdio_url) = gateway(&manifold, dir.path(), "stdio", &stdio_upstream);
    // The pipeline's cost: the default stages (trace, metrics, audit) against none at all.
    let bare = "telemetry: {enabled: false}\nmetrics: {enabled: false}\naudit: {enabled: false}\n";
    // Every stage on: an API key, a policy that decides every call, rate limits that never
    // refuse (the buckets are still checked) and a per-tool timeout.
    let full = format!(
        "auth:\n  api_keys:\n    - {{name: bench, sha256: \"{BENCH_KEY_SHA256}\"}}\n\
         policy:\n  rules:\n    - {{who: {{subjects: [bench]}}, effect: deny, tools: [crash]}}\n\
         rate_limits:\n  global: {{rate: 1000000/s}}\n  per_principal: {{rate: 1000000/s}}\n\
         {http_upstream}    tool_timeouts: {{\"who*\": 30s}}\n"
    );
    let (_gw_full, full_url) = gateway(&manifold, dir.path(), "full", &full);
    let (_gw_bare, bare_url) = gateway(
        &manifold,
        dir.path(),
        "bare",
        &format!("{bare}{http_upstream}"),
    );
    // The fixture speaks both eras and the gateway probes it as 2026-07-28; this one is held
    // to the handshake era, so the two upstream eras can be compared.
    let (_gw_legacy, legacy_url) = gateway(
        &manifold,
        dir.path(),
        "legacy",
        &format!("{http_upstream}    protocol: legacy\n"),
    );

    let targets = vec![
        Target::new(
            "direct",
            "fixture, Streamable HTTP, no gateway",
            &fixture_url,
            false,
        ),
        Target::new(
            "gw-stream",
            "manifold → HTTP upstream, response_mode: stream (default, SSE answers)",
            &stream_url,
            true,
        ),
        Target::new(
            "gw-auto",
            "manifold → HTTP upstream, response_mode: auto (plain JSON answers)",
            &auto_url,
            true,
        ),
        Target::new(
            "gw-full",
            "manifold → HTTP upstream, stream, + API key, policy, rate limits, tool timeout",
            &full_url,
            true,
        )
        .with_auth(BENCH_KEY),
        Target::new(
            "gw-bare",
            "manifold → HTTP upstream, response_mode: stream, every pipeline stage disabled",
            &bare_url,
            true,
        ),
        Target::new(
            "gw-stdio",
            "manifold → stdio upstream, response_mode: stream (no direct baseline)",
            &stdio_url,
            true,
        ),
        Target::new(
            "gw-old-up",
            "manifold → HTTP upstream held to the handshake era (protocol: legacy)",
            &legacy_url,
            true,
        ),
        Target::new(
            "direct-26",
            "fixture, 2026-07-28 client (server/discover, no session), no gateway",
            &fixture_url,
            false,
        )
        .modern(),
        Target::new(
            "gw-26",
            "2026-07-28 client → manifold → 2026-07-28 upstream (ratios against direct-26)",
            &stream_url,
            true,
        )
        .modern(),
        Target::new(
            "gw-26-old",
            "2026-07-28 client → manifold → handshake-era upstream (ratios against direct-26)",
            &legacy_url,
            true,
        )
        .modern(),
    ];

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(run(&targets));
    drop(runtime);

    let mut text = String::new();
    let _ = writeln!(text, "Manifold passthrough benchmark");
    let _ = writeln!(
        text,
        "  commit {}, {} CPUs, load average {} at start, {} at end",
        git_commit(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_start,
        loadavg()
    );
    let _ = writeln!(
        text,
        "  client: rmcp, Streamable HTTP, protocol {}",
        report.protocol
    );
    let _ = writeln!(
        text,
        "  call: tools/call whoami (through a gateway: bench__whoami), upstream: rmcp fixture_server"
    );
    for t in &targets {
        let _ = writeln!(text, "  {:<10} {}", t.name, t.about);
    }
    text.push_str(&report.tables);
    let _ = writeln!(
        text,
        "\nratio = gateway / direct (latency: >1 is slower; calls/s: <1 is fewer); \
         +µs = gateway mean − direct mean"
    );
    let _ = writeln!(
        text,
        "latencies near 44000 µs: Nagle × delayed ACK (a server without TCP_NODELAY), see the \
         comment at the top of benches/passthrough.rs"
    );
    print!("{text}");
    std::fs::write(&out_file, &text).expect("write the report");
    println!("written to {}", out_file.display());
}

/// One endpoint under test.
struct Target {
    name: &'static str,
    about: &'static str,
    url: String,
    /// Whether calls go through the gateway (tool names are then prefixed).
    via_gateway: bool,
    /// Whether ratios against the direct target make sense (same upstream transport).
    compared: bool,
    /// Bearer token to present, for a gateway with authentication.
    auth: Option<&'static str>,
    /// A 2026-07-28 client (no handshake); compared with the direct 2026-07-28 target.
    modern: bool,
}

impl Target {
    fn new(name: &'static str, about: &'static str, url: &str, via_gateway: bool) -> Target {
        Target {
            name,
            about,
            url: url.to_owned(),
            via_gateway,
            compared: via_gateway && !name.ends_with("stdio"),
            auth: None,
            modern: false,
        }
    }

    fn modern(mut self) -> Target {
        self.modern = true;
        self
    }

    fn with_auth(mut self, token: &'static str) -> Target {
        self.auth = Some(token);
        self
    }

    fn tool(&self) -> &'static str {
        if self.via_gateway {
            "bench__whoami"
        } else {
            "whoami"
        }
    }
}

/// What [`run`] measured, already formatted.
struct Report {
    protocol: String,
    tables: String,
}

/// Samples of one target in one scenario, accumulated over rounds.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    /// Wall time of the measured loops only (not of setup or other targets).
    busy: Duration,
}

impl Samples {
    fn stats(&self) -> Stats {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let n = sorted.len().max(1);
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| {
            // Nearest rank.
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            sorted.get(rank - 1).copied().map_or(0.0, micros)
        };
        let total: Duration = sorted.iter().sum();
        Stats {
            mean: micros(total) / n as f64,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            per_sec: sorted.len() as f64 / self.busy.as_secs_f64().max(f64::MIN_POSITIVE),
        }
    }
}

#[derive(Clone, Copy)]
struct Stats {
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    per_sec: f64,
}

async fn run(targets: &[Target]) -> Report {
    let probe = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("reqwest client");
    for t in targets.iter().filter(|t| t.via_gateway) {
        wait_ready(&probe, &t.url).await;
    }

    // No overall timeout on MCP clients: a session's GET stream lives as long as the session.
    let keepalive = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .expect("reqwest client");
    let mut protocols = Vec::new();
    let mut tables = String::new();
    for (policy, http) in [
        ("KEEP-ALIVE connections", keepalive),
        (
            "a NEW CONNECTION per request (what rmcp's default client does)",
            fresh,
        ),
    ] {
        let _ = write!(tables, "\n══ client HTTP connections: {policy} ══\n");
        protocols.extend(measure(targets, &http, &mut tables).await);
    }
    protocols.sort();
    protocols.dedup();
    Report {
        protocol: protocols.join("/"),
        tables,
    }
}

/// The whole suite with rmcp clients on `http`; appends its tables to `tables` and returns the
/// protocol revisions the sessions negotiated.
async fn measure(targets: &[Target], http: &reqwest::Client, tables: &mut String) -> Vec<String> {
    // One client per target for the sequential runs, CONC_CLIENTS more for the concurrent one.
    let mut solo = Vec::new();
    let mut crowds = Vec::new();
    for t in targets {
        solo.push(connect(http, t).await);
        let mut crowd = Vec::new();
        for _ in 0..CONC_CLIENTS {
            crowd.push(connect(http, t).await);
        }
        crowds.push(crowd);
    }
    let protocols = solo
        .iter()
        .map(|c| {
            c.peer_info()
                .map_or_else(|| "?".to_owned(), |i| i.protocol_version.to_string())
        })
        .collect();

    // Warm-up: the answer must name the fixture; every concurrent client makes its upstream
    // session (the gateway opens one per client session) and fills its pool.
    for (i, t) in targets.iter().enumerate() {
        let text = call(solo[i].peer(), t.tool()).await;
        assert!(
            text.contains("bench"),
            "{}: whoami answered {text:?}",
            t.name
        );
        for _ in 0..WARMUP {
            call(solo[i].peer(), t.tool()).await;
        }
        let peers = peers(&crowds[i]);
        concurrent(&peers, t.tool(), WARMUP.div_ceil(CONC_CLIENTS)).await;
        let listed = list(solo[i].peer()).await;
        assert!(
            listed.iter().any(|n| n == t.tool()),
            "{}: tools/list lacks {}: {listed:?}",
            t.name,
            t.tool()
        );
    }

    let mut seq: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for round in 0..SEQ_ROUNDS {
        for i in order(round, targets.len()) {
            let peer = solo[i].peer();
            let tool = targets[i].tool();
            let start = Instant::now();
            for _ in 0..SEQ_CALLS / SEQ_ROUNDS {
                let t0 = Instant::now();
                call(peer, tool).await;
                seq[i].latencies.push(t0.elapsed());
            }
            seq[i].busy += start.elapsed();
        }
    }

    let mut conc: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for round in 0..CONC_ROUNDS {
        for i in order(round, targets.len()) {
            let peers = peers(&crowds[i]);
            let start = Instant::now();
            let latencies = concurrent(&peers, targets[i].tool(), CONC_CALLS / CONC_ROUNDS).await;
            conc[i].busy += start.elapsed();
            conc[i].latencies.extend(latencies);
        }
    }

    let mut lists: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for round in 0..LIST_ROUNDS {
        for i in order(round, targets.len()) {
            let peer = solo[i].peer();
            let start = Instant::now();
            for _ in 0..LIST_CALLS / LIST_ROUNDS {
                let t0 = Instant::now();
                list(peer).await;
                lists[i].latencies.push(t0.elapsed());
            }
            lists[i].busy += start.elapsed();
        }
    }

    for client in solo.into_iter().chain(crowds.into_iter().flatten()) {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    }

    table(
        tables,
        &format!(
            "tools/call, sequential: 1 client, {SEQ_CALLS} calls per target in {SEQ_ROUNDS} \
             interleaved rounds, after {WARMUP} warm-up calls"
        ),
        targets,
        &seq,
    );
    table(
        tables,
        &format!(
            "tools/call, concurrent: {CONC_CLIENTS} clients × {CONC_CALLS} calls per target in \
             {CONC_ROUNDS} interleaved rounds"
        ),
        targets,
        &conc,
    );
    table(
        tables,
        &format!(
            "tools/list, sequential: 1 client, {LIST_CALLS} calls per target in {LIST_ROUNDS} \
             interleaved rounds (the gateway answers from its cache)"
        ),
        targets,
        &lists,
    );
    protocols
}

/// The order targets are visited in during `round`: forwards, then backwards, and so on.
fn order(round: usize, n: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
}

fn peers(clients: &[Client]) -> Vec<Peer<RoleClient>> {
    clients.iter().map(|c| c.peer().clone()).collect()
}

/// `calls` sequential calls on each peer, all peers at once; every call's latency.
async fn concurrent(peers: &[Peer<RoleClient>], tool: &'static str, calls: usize) -> Vec<Duration> {
    let tasks: Vec<_> = peers
        .iter()
        .cloned()
        .map(|peer| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let t0 = Instant::now();
                    call(&peer, tool).await;
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(calls * peers.len());
    for task in tasks {
        all.extend(task.await.expect("a concurrent client panicked"));
    }
    all
}

/// One `tools/call` without arguments; the text of its first content block.
async fn call(peer: &Peer<RoleClient>, tool: &'static str) -> String {
    let result = tokio::time::timeout(WAIT, peer.call_tool(CallToolRequestParams::new(tool)))
        .await
        .unwrap_or_else(|_| panic!("tools/call {tool} took over {WAIT:?}"))
        .unwrap_or_else(|e| panic!("tools/call {tool}: {e}"));
    assert!(
        result.is_error != Some(true),
        "tools/call {tool} failed: {result:?}"
    );
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// One `tools/list` (first page); the tool names.
async fn list(peer: &Peer<RoleClient>) -> Vec<String> {
    let result = tokio::time::timeout(WAIT, peer.list_tools(None))
        .await
        .unwrap_or_else(|_| panic!("tools/list took over {WAIT:?}"))
        .unwrap_or_else(|e| panic!("tools/list: {e}"));
    result.tools.iter().map(|t| t.name.to_string()).collect()
}

/// An initialized rmcp client session on `target`, its response cache off so every
/// `tools/list` reaches the server.
async fn connect(http: &reqwest::Client, target: &Target) -> Client {
    let mut settings = StreamableHttpClientTransportConfig::with_uri(target.url.as_str());
    settings.auth_header = target.auth.map(str::to_owned);
    let transport = StreamableHttpClientTransport::with_client(http.clone(), settings);
    let mut config = ClientConfig::default();
    let opened = if target.modern {
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        tokio::time::timeout(WAIT, config.serve_with_lifecycle(transport, lifecycle)).await
    } else {
        // The newest handshake revision, so both sides speak the same one.
        config.protocol_version = ProtocolVersion::V_2025_11_25;
        tokio::time::timeout(WAIT, config.serve(transport)).await
    };
    let client = match opened {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!("{}: initialize: {e}", target.name),
        Err(_) => panic!("{}: initialize took over {WAIT:?}", target.name),
    };
    client
        .set_response_cache_config(ClientCacheConfig::disabled())
        .await;
    client
}

/// Polls `/readyz` next to the MCP endpoint `url` until it answers 200.
async fn wait_ready(http: &reqwest::Client, url: &str) {
    let base = url.strip_suffix("/mcp").expect("endpoint path is /mcp");
    let deadline = Instant::now() + WAIT;
    loop {
        let status = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if matches!(status, Ok(200)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{base}/readyz not 200 after {WAIT:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Appends one scenario: absolute figures per target, then ratios of each gateway target that
/// has a direct baseline (the first target) against it.
fn table(out: &mut String, title: &str, targets: &[Target], samples: &[Samples]) {
    let stats: Vec<Stats> = samples.iter().map(Samples::stats).collect();
    // Each era against its own direct call: the first target of the same era.
    let base_of = |modern: bool| {
        let i = targets.iter().position(|t| t.modern == modern).unwrap_or(0);
        stats[i]
    };
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "  {:<10} {:>9} {:>9} {:>9} {:>9} {:>9} │ {:>6} {:>6} {:>6} {:>6} {:>8} {:>7}",
        "target",
        "mean µs",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "calls/s",
        "×mean",
        "×p50",
        "×p90",
        "×p99",
        "×calls/s",
        "+µs"
    );
    for (t, s) in targets.iter().zip(&stats) {
        let base = base_of(t.modern);
        let _ = write!(
            out,
            "  {:<10} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} │",
            t.name, s.mean, s.p50, s.p90, s.p99, s.per_sec
        );
        if !t.compared {
            let _ = writeln!(
                out,
                " {:>6} {:>6} {:>6} {:>6} {:>8} {:>7}",
                "—", "—", "—", "—", "—", "—"
            );
        } else {
            let _ = writeln!(
                out,
                " {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>8.2} {:>7.0}",
                s.mean / base.mean,
                s.p50 / base.p50,
                s.p90 / base.p90,
                s.p99 / base.p99,
                s.per_sec / base.per_sec,
                s.mean - base.mean
            );
        }
    }
}

/// A child process, stopped when dropped: SIGTERM, up to 5 s to exit, then SIGKILL.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` (stderr to `log`) and waits for the stdout line starting with `prefix`;
    /// returns the guard and the rest of that line.
    fn spawn(name: &str, cmd: &mut Command, log: &Path, prefix: &str) -> (Proc, String) {
        let stderr = std::fs::File::create(log).expect("log file");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let proc = Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        };
        // Read on a thread that keeps draining stdout, so the child never blocks on the pipe.
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
        match rx.recv_timeout(WAIT) {
            Ok(rest) => (proc, rest),
            Err(_) => panic!(
                "{name} printed no `{prefix}` line within {WAIT:?}; its log:\n{}",
                std::fs::read_to_string(&proc.log).unwrap_or_default()
            ),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} ignored SIGTERM for 5 s; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `manifold serve` on a free loopback port with `yaml` as its config; returns the guard
/// and the MCP endpoint it announced.
fn gateway(manifold: &Path, dir: &Path, name: &str, yaml: &str) -> (Proc, String) {
    let config = dir.join(format!("gateway-{name}.yaml"));
    std::fs::write(&config, yaml).expect("write gateway config");
    let mut cmd = Command::new(manifold);
    // Only the config written here counts: no MANIFOLD_* or RUST_LOG from the environment.
    for (key, _) in std::env::vars_os() {
        let upper = key.to_string_lossy().to_ascii_uppercase();
        if upper.starts_with("MANIFOLD_") || upper == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"]);
    Proc::spawn(
        &format!("gateway {name}"),
        &mut cmd,
        &dir.join(format!("gateway-{name}.log")),
        "manifold listening on ",
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn git_commit() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

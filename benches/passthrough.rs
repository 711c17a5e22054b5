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
//! Two builds in one run: when `MANIFOLD_BASELINE` names another `manifold` binary (`scripts/bench
//! --baseline REV` builds one and sets it), every gateway configuration is started a second time
//! with that binary, as a target named after the first with `@base` appended (`gw-stream@base`),
//! visited right after its twin in the same alternating rounds. Each scenario then also gets a
//! current / baseline table (mean, p50, calls/s and the lowest and highest per-round ratio of
//! the means), and the report ends with a summary of those ratios over every scenario. The same
//! binary on both sides shows the noise floor of the method. `MANIFOLD_BASELINE_LABEL` (set by
//! scripts/bench) names the baseline in the header. `BENCH_SCALE` (default 1) multiplies the
//! number of calls, for a quick check of the harness. Without these variables the run and its
//! output are as before.
//!
//! Run with `scripts/bench` (it builds the release binaries and the fixture example first, which
//! `cargo bench --bench passthrough` alone does not). The table goes to stdout and to
//! `target/bench-passthrough.txt`. Every process started here is stopped by a guard, also when
//! the bench panics. Under `cargo test` (no `--bench` argument) the bench does nothing.

#[path = "common/proc.rs"]
mod proc;
#[path = "common/scale.rs"]
mod scale;
#[path = "common/stdout.rs"]
mod stdout;

use proc::Proc;

use scale::{scale_factor, scaled};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
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
    let baseline = baseline_binary();

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
    let base = baseline.as_deref();
    let gw_stream = Gateway::start(&manifold, base, dir.path(), "stream", &http_upstream);
    let gw_auto = Gateway::start(
        &manifold,
        base,
        dir.path(),
        "auto",
        &format!("response_mode: auto\n{http_upstream}"),
    );
    let gw_stdio = Gateway::start(&manifold, base, dir.path(), "stdio", &stdio_upstream);
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
    let gw_full = Gateway::start(&manifold, base, dir.path(), "full", &full);
    let gw_bare = Gateway::start(
        &manifold,
        base,
        dir.path(),
        "bare",
        &format!("{bare}{http_upstream}"),
    );
    // The fixture speaks both eras and the gateway probes it as 2026-07-28; this one is held
    // to the handshake era, so the two upstream eras can be compared. (`legacy` is the older
    // spelling of `handshake`, kept here so a baseline build of an earlier release reads it.)
    let gw_handshake = Gateway::start(
        &manifold,
        base,
        dir.path(),
        "handshake",
        &format!("{http_upstream}    protocol: legacy\n"),
    );

    let targets = with_twins(vec![
        Target::new(
            "direct",
            "fixture, Streamable HTTP, no gateway",
            &fixture_url,
            false,
        ),
        Target::via(
            "gw-stream",
            "manifold → HTTP upstream, response_mode: stream (default, SSE answers)",
            &gw_stream,
        ),
        Target::via(
            "gw-auto",
            "manifold → HTTP upstream, response_mode: auto (plain JSON answers)",
            &gw_auto,
        ),
        Target::via(
            "gw-full",
            "manifold → HTTP upstream, stream, + API key, policy, rate limits, tool timeout",
            &gw_full,
        )
        .with_auth(BENCH_KEY),
        Target::via(
            "gw-bare",
            "manifold → HTTP upstream, response_mode: stream, every pipeline stage disabled",
            &gw_bare,
        ),
        Target::via(
            "gw-stdio",
            "manifold → stdio upstream, response_mode: stream (no direct baseline)",
            &gw_stdio,
        ),
        Target::via(
            "gw-old-up",
            "manifold → HTTP upstream held to the handshake era (protocol: legacy)",
            &gw_handshake,
        ),
        Target::new(
            "direct-26",
            "fixture, 2026-07-28 client (server/discover, no session), no gateway",
            &fixture_url,
            false,
        )
        .stateless(),
        Target::via(
            "gw-26",
            "2026-07-28 client → manifold → 2026-07-28 upstream (ratios against direct-26)",
            &gw_stream,
        )
        .stateless(),
        Target::via(
            "gw-26-old",
            "2026-07-28 client → manifold → handshake-era upstream (ratios against direct-26)",
            &gw_handshake,
        )
        .stateless(),
    ]);

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
    let scale = scale_factor();
    if scale != 1.0 {
        let _ = writeln!(
            text,
            "  BENCH_SCALE={scale}: call counts scaled, see the titles"
        );
    }
    let width = name_width(&targets);
    for t in targets.iter().filter(|t| t.twin_of.is_none()) {
        let _ = writeln!(text, "  {:<width$} {}", t.name, t.about);
    }
    if let Some(path) = &baseline {
        let _ = writeln!(
            text,
            "  {:<width$} each gateway configuration again, served by the baseline build",
            "…@base"
        );
        let _ = writeln!(text, "  current:  {}", describe_current(&manifold));
        let _ = writeln!(text, "  baseline: {}", describe_baseline(path));
    }
    text.push_str(&report.tables);
    if baseline.is_some() {
        text.push_str(&summary(&report.comparisons));
    }
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
    if baseline.is_some() {
        let _ = writeln!(
            text,
            "current / baseline: a configuration on this build against its @base twin on the \
             baseline build, in the same rounds (latency: >1 is slower; calls/s: <1 is fewer); \
             rounds = lowest–highest ratio of the two means in a single round"
        );
    }
    print!("{text}");
    std::fs::write(&out_file, &text).expect("write the report");
    println!("written to {}", out_file.display());
}

/// One endpoint under test.
#[derive(Clone)]
struct Target {
    name: String,
    about: &'static str,
    url: String,
    /// Whether calls go through the gateway (tool names are then prefixed).
    via_gateway: bool,
    /// Whether ratios against the direct target make sense (same upstream transport).
    compared: bool,
    /// Bearer token to present, for a gateway with authentication.
    auth: Option<&'static str>,
    /// A 2026-07-28 client (no handshake); compared with the direct 2026-07-28 target.
    stateless: bool,
    /// The same configuration served by the baseline binary, if there is one; [`with_twins`]
    /// makes a target of it.
    base_url: Option<String>,
    /// For a target on the baseline binary: the index of its twin on the current one.
    twin_of: Option<usize>,
}

impl Target {
    fn new(name: &str, about: &'static str, url: &str, via_gateway: bool) -> Target {
        Target {
            name: name.to_owned(),
            about,
            url: url.to_owned(),
            via_gateway,
            compared: via_gateway && !name.ends_with("stdio"),
            auth: None,
            stateless: false,
            base_url: None,
            twin_of: None,
        }
    }

    /// A target through `gateway` (and its baseline twin, if any).
    fn via(name: &str, about: &'static str, gateway: &Gateway) -> Target {
        let mut target = Target::new(name, about, &gateway.url, true);
        target.base_url = gateway.base_url.clone();
        target
    }

    fn stateless(mut self) -> Target {
        self.stateless = true;
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

/// `targets` with, right after each one that has a baseline gateway, its twin `NAME@base` on
/// that gateway, so the two are visited next to each other in every round. Unchanged when
/// there is no baseline.
fn with_twins(targets: Vec<Target>) -> Vec<Target> {
    let mut all = Vec::with_capacity(targets.len() * 2);
    for target in targets {
        let twin = target.base_url.as_ref().map(|url| Target {
            name: format!("{}@base", target.name),
            url: url.clone(),
            base_url: None,
            twin_of: Some(all.len()),
            ..target.clone()
        });
        all.push(target);
        all.extend(twin);
    }
    all
}

/// Width of the target column: 10 as always, wider for the `@base` names.
fn name_width(targets: &[Target]) -> usize {
    targets
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(10)
}

/// What [`run`] measured, already formatted.
struct Report {
    protocol: String,
    tables: String,
    /// Per connection policy, its current / baseline comparisons (empty without a baseline).
    comparisons: Vec<(&'static str, Comparisons)>,
}

/// The current / baseline ratios of one connection policy, per scenario.
#[derive(Default)]
struct Comparisons {
    seq: Vec<Ratio>,
    conc: Vec<Ratio>,
    list: Vec<Ratio>,
}

/// One configuration on the current build against its twin on the baseline build.
struct Ratio {
    name: String,
    mean: f64,
    p50: f64,
    per_sec: f64,
    /// Lowest and highest ratio of the two means within a single round.
    rounds: (f64, f64),
}

/// Samples of one target in one scenario, accumulated over rounds.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    /// Wall time of the measured loops only (not of setup or other targets).
    busy: Duration,
    /// Per round: the number of calls, the sum of their latencies and the wall time.
    rounds: Vec<(usize, Duration, Duration)>,
}

impl Samples {
    /// Adds one round's latencies and the wall time they took.
    fn record(&mut self, latencies: Vec<Duration>, busy: Duration) {
        let total = latencies.iter().sum();
        self.rounds.push((latencies.len(), total, busy));
        self.latencies.extend(latencies);
        self.busy += busy;
    }

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
    let mut comparisons = Vec::new();
    for (short, policy, http) in [
        ("keep-alive", "KEEP-ALIVE connections", keepalive),
        (
            "new connection per request",
            "a NEW CONNECTION per request (what rmcp's default client does)",
            fresh,
        ),
    ] {
        let _ = write!(tables, "\n══ client HTTP connections: {policy} ══\n");
        let (negotiated, compared) = measure(targets, &http, &mut tables).await;
        protocols.extend(negotiated);
        if !compared.seq.is_empty() {
            comparisons.push((short, compared));
        }
    }
    protocols.sort();
    protocols.dedup();
    Report {
        protocol: protocols.join("/"),
        tables,
        comparisons,
    }
}

/// The whole suite with rmcp clients on `http`; appends its tables to `tables` and returns the
/// protocol revisions the sessions negotiated and the current / baseline comparisons.
async fn measure(
    targets: &[Target],
    http: &reqwest::Client,
    tables: &mut String,
) -> (Vec<String>, Comparisons) {
    let warmup = scaled(WARMUP, 1);
    let seq_calls = scaled(SEQ_CALLS, SEQ_ROUNDS);
    let conc_calls = scaled(CONC_CALLS, CONC_ROUNDS);
    let list_calls = scaled(LIST_CALLS, LIST_ROUNDS);
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
        for _ in 0..warmup {
            call(solo[i].peer(), t.tool()).await;
        }
        let peers = peers(&crowds[i]);
        concurrent(&peers, t.tool(), warmup.div_ceil(CONC_CLIENTS)).await;
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
            let mut latencies = Vec::with_capacity(seq_calls / SEQ_ROUNDS);
            let start = Instant::now();
            for _ in 0..seq_calls / SEQ_ROUNDS {
                let t0 = Instant::now();
                call(peer, tool).await;
                latencies.push(t0.elapsed());
            }
            seq[i].record(latencies, start.elapsed());
        }
    }

    let mut conc: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for round in 0..CONC_ROUNDS {
        for i in order(round, targets.len()) {
            let peers = peers(&crowds[i]);
            let start = Instant::now();
            let latencies = concurrent(&peers, targets[i].tool(), conc_calls / CONC_ROUNDS).await;
            conc[i].record(latencies, start.elapsed());
        }
    }

    let mut lists: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
    for round in 0..LIST_ROUNDS {
        for i in order(round, targets.len()) {
            let peer = solo[i].peer();
            let mut latencies = Vec::with_capacity(list_calls / LIST_ROUNDS);
            let start = Instant::now();
            for _ in 0..list_calls / LIST_ROUNDS {
                let t0 = Instant::now();
                list(peer).await;
                latencies.push(t0.elapsed());
            }
            lists[i].record(latencies, start.elapsed());
        }
    }

    for client in solo.into_iter().chain(crowds.into_iter().flatten()) {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    }

    let compared = Comparisons {
        seq: table(
            tables,
            &format!(
                "tools/call, sequential: 1 client, {seq_calls} calls per target in {SEQ_ROUNDS} \
                 interleaved rounds, after {warmup} warm-up calls"
            ),
            targets,
            &seq,
        ),
        conc: table(
            tables,
            &format!(
                "tools/call, concurrent: {CONC_CLIENTS} clients × {conc_calls} calls per target \
                 in {CONC_ROUNDS} interleaved rounds"
            ),
            targets,
            &conc,
        ),
        list: table(
            tables,
            &format!(
                "tools/list, sequential: 1 client, {list_calls} calls per target in \
                 {LIST_ROUNDS} interleaved rounds (the gateway answers from its cache)"
            ),
            targets,
            &lists,
        ),
    };
    (protocols, compared)
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
    let opened = if target.stateless {
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
/// has a direct baseline (the first target) against it; with a baseline build, then each
/// configuration against its twin on that build, whose ratios it returns.
fn table(out: &mut String, title: &str, targets: &[Target], samples: &[Samples]) -> Vec<Ratio> {
    let stats: Vec<Stats> = samples.iter().map(Samples::stats).collect();
    // Each era against its own direct call: the first target of the same era.
    let base_of = |stateless: bool| {
        let i = targets
            .iter()
            .position(|t| t.stateless == stateless)
            .unwrap_or(0);
        stats[i]
    };
    let width = name_width(targets);
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "  {:<width$} {:>9} {:>9} {:>9} {:>9} {:>9} │ {:>6} {:>6} {:>6} {:>6} {:>8} {:>7}",
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
        let base = base_of(t.stateless);
        let _ = write!(
            out,
            "  {:<width$} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} │",
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

    // Each configuration on the current build (c) against its twin on the baseline build (b).
    let pairs: Vec<(usize, usize)> = (0..targets.len())
        .filter_map(|b| targets[b].twin_of.map(|c| (c, b)))
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(out, "  current / baseline");
        let _ = writeln!(
            out,
            "  {:<width$} {:>9} {:>9} {:>6} │ {:>9} {:>9} {:>6} │ {:>9} {:>9} {:>8} │ {:>11}",
            "config",
            "mean µs",
            "base µs",
            "×mean",
            "p50 µs",
            "base µs",
            "×p50",
            "calls/s",
            "base",
            "×calls/s",
            "rounds"
        );
    }
    let mut ratios = Vec::new();
    for (c, b) in pairs {
        let (cur, base) = (stats[c], stats[b]);
        // Per round: the mean latency of the current build over that of the baseline.
        let mean =
            |&(n, total, _): &(usize, Duration, Duration)| total.as_secs_f64() / n.max(1) as f64;
        let rounds = samples[c]
            .rounds
            .iter()
            .zip(&samples[b].rounds)
            .map(|(cur, base)| mean(cur) / mean(base))
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            });
        let ratio = Ratio {
            name: targets[c].name.clone(),
            mean: cur.mean / base.mean,
            p50: cur.p50 / base.p50,
            per_sec: cur.per_sec / base.per_sec,
            rounds,
        };
        let _ = writeln!(
            out,
            "  {:<width$} {:>9.0} {:>9.0} {:>6.3} │ {:>9.0} {:>9.0} {:>6.3} │ {:>9.0} {:>9.0} \
             {:>8.3} │ {:>5.3}–{:<5.3}",
            ratio.name,
            cur.mean,
            base.mean,
            ratio.mean,
            cur.p50,
            base.p50,
            ratio.p50,
            cur.per_sec,
            base.per_sec,
            ratio.per_sec,
            ratio.rounds.0,
            ratio.rounds.1
        );
        ratios.push(ratio);
    }
    ratios
}

/// The current / baseline ratios of every scenario and connection policy, one line per
/// configuration, and their geometric mean over the configurations.
fn summary(comparisons: &[(&'static str, Comparisons)]) -> String {
    let mut out = String::new();
    let Some((_, first)) = comparisons.first() else {
        return out;
    };
    let width = first
        .seq
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(10);
    let _ = write!(
        out,
        "\n══ current / baseline, every scenario (latency: >1 is slower; calls/s: <1 is fewer) ══\n"
    );
    let _ = write!(out, "  {:<width$}", "");
    for (policy, _) in comparisons {
        let _ = write!(out, " │ {policy:<41}");
    }
    let _ = write!(out, "\n  {:<width$}", "config");
    for _ in comparisons {
        let _ = write!(
            out,
            " │ {:>9} {:>9} {:>10} {:>10}",
            "seq ×mean", "seq ×p50", "conc ×c/s", "list ×mean"
        );
    }
    out.push('\n');
    let row = |c: &Comparisons, i: usize| {
        [
            c.seq[i].mean,
            c.seq[i].p50,
            c.conc[i].per_sec,
            c.list[i].mean,
        ]
    };
    for (i, r) in first.seq.iter().enumerate() {
        let _ = write!(out, "  {:<width$}", r.name);
        for (_, c) in comparisons {
            let [a, b, cc, d] = row(c, i);
            let _ = write!(out, " │ {a:>9.3} {b:>9.3} {cc:>10.3} {d:>10.3}");
        }
        out.push('\n');
    }
    let _ = write!(out, "  {:<width$}", "geo. mean");
    for (_, c) in comparisons {
        let n = c.seq.len();
        let geo = |k: usize| ((0..n).map(|i| row(c, i)[k].ln()).sum::<f64>() / n as f64).exp();
        let _ = write!(
            out,
            " │ {:>9.3} {:>9.3} {:>10.3} {:>10.3}",
            geo(0),
            geo(1),
            geo(2),
            geo(3)
        );
    }
    out.push('\n');
    out
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

/// One gateway configuration: `manifold serve` of the current build and, with a baseline, the
/// same configuration served by the baseline binary. Both are stopped when this is dropped.
struct Gateway {
    _procs: Vec<Proc>,
    url: String,
    base_url: Option<String>,
}

impl Gateway {
    fn start(
        manifold: &Path,
        baseline: Option<&Path>,
        dir: &Path,
        name: &str,
        yaml: &str,
    ) -> Gateway {
        let (current, url) = gateway(manifold, dir, name, yaml);
        let mut procs = vec![current];
        let base_url = baseline.map(|binary| {
            let (proc, url) = gateway(binary, dir, &format!("{name}@base"), yaml);
            procs.push(proc);
            url
        });
        Gateway {
            _procs: procs,
            url,
            base_url,
        }
    }
}

/// The baseline binary named by `MANIFOLD_BASELINE`, if set and not empty.
fn baseline_binary() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("MANIFOLD_BASELINE").filter(|v| !v.is_empty())?);
    assert!(
        path.is_file(),
        "MANIFOLD_BASELINE={} is not a file (it must name a manifold binary)",
        path.display()
    );
    Some(path)
}

/// The current build for the header: its binary and the commit of this tree.
fn describe_current(manifold: &Path) -> String {
    format!("{}, commit {}", fingerprint(manifold), git_commit())
}

/// The baseline build for the header: `MANIFOLD_BASELINE_LABEL` (scripts/bench puts the
/// revision there) and the binary.
fn describe_baseline(binary: &Path) -> String {
    match std::env::var("MANIFOLD_BASELINE_LABEL") {
        Ok(label) if !label.is_empty() => format!("{}, {label}", fingerprint(binary)),
        _ => fingerprint(binary),
    }
}

/// A binary's path and the first 12 hex digits of its SHA-256, so two builds can be told
/// apart (or seen to be the same file).
fn fingerprint(binary: &Path) -> String {
    let digest = Command::new("sha256sum")
        .arg(binary)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .get(..12)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".to_owned());
    format!("{} (sha256 {digest}…)", binary.display())
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

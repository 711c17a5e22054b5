//! Load benchmark: what manifold sustains under concurrent load, as ratios against the same
//! upstream called directly (and against HAProxy, a plain HTTP proxy, as the ceiling of any
//! proxy), with the CPU each side spends per call, in one run.
//!
//! The load generator is `oha` (`scripts/bench load` installs a pinned version under
//! `.bench/oha`; `OHA` names another binary), run with `--no-tui` and JSON output. The
//! upstream is `examples/bench_upstream`, which answers at once, so the figures are the
//! gateway's own costs. With two cores or more every process is pinned with `taskset`: oha on
//! CPU 0; the upstream, the gateways and HAProxy on CPU 1 (so a direct run is oha on CPU 0
//! and the upstream on CPU 1, and a gateway run puts gateway and upstream together on CPU 1).
//!
//! Targets, visited in alternating rounds (A B C D, D C B A, …; medians over rounds):
//!
//! * `direct`: oha → bench_upstream (HTTP);
//! * `manifold`: oha → `manifold serve` → bench_upstream over HTTP, with the default pipeline
//!   of `gateway.yaml` (trace, metrics and audit on, as they default; `response_mode:
//!   stream`), only the upstream replaced;
//! * `manifold-stdio`: the same with `bench_upstream --stdio` as a stdio upstream (it speaks
//!   both eras, so the gateway runs two processes of it, one per era);
//! * `haproxy`: HAProxy in http mode, one thread, in front of bench_upstream, when `haproxy`
//!   is installed;
//! * `bare-proxy`: `examples/bare_proxy`, a plain HTTP/1 reverse proxy on manifold's own stack
//!   (Tokio, hyper, mimalloc) doing no MCP work: the floor of that stack, so that what
//!   manifold costs above it is its MCP work and pipeline;
//! * with `MANIFOLD_BASELINE` (another `manifold` binary; `scripts/bench load --baseline-bin
//!   PATH` or `--baseline REV` sets it) every gateway target again on that build (`NAME@base`),
//!   visited right after its twin, and a current / baseline table.
//!
//! Scenarios: `tools/call` over keep-alive connections at 16 and 64 connections in both eras
//! (2026-07-28: POST with `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the `_meta`
//! envelope, no session; 2025-11-25: one session per target opened first with `initialize` and
//! `notifications/initialized`, its `Mcp-Session-Id` sent by every connection), and at 1
//! connection for p50/p99 latency; and a 2026-07-28 `tools/call` whose arguments are about
//! 1 MiB of small records, at 1 connection (what a large payload costs on its way through; no
//! target). Request ids vary (oha picks each body from a file of
//! numbered lines). CPU per call: utime + stime from `/proc/PID/stat` of the gateway (or
//! HAProxy) and of the upstream process(es) before and after each run, over the responses
//! oha counted; the proxy's stime alone is shown beside it (its kernel part: loopback TCP
//! both ways, the wake-ups and the switches on the shared CPU). Every visit's status codes are kept (all should be 200), and the gateways'
//! audit lines are counted by outcome (all should be `ok`), their logs emptied between
//! scenarios so a long run does not fill the disk.
//!
//! Then, gateway only: a merged `tools/list` of 20 stdio upstreams × 100 tools answered from
//! the gateway's catalog, p50/p99 at 1 connection in both eras, all 2,000 in one page
//! (`page_size: 2000`) and the first page of the default 100;
//! VmRSS of a fresh gateway idle, and after 10,000 handshake-era sessions (initialize +
//! initialized each over keep-alive connections; `sessions.max`, per-source limits and
//! `sessions.unused_timeout` raised so none is evicted); time from spawn until `/readyz`
//! answers 200 (polled every millisecond) with 4 stdio upstreams, median of several starts.
//!
//! The report (machine, date, commit, command, the tables against the targets of issue 14)
//! goes to stdout and to `target/bench-load.txt`. `BENCH_SCALE` (default 1) scales every
//! duration. Every process started here is stopped by a guard, also when the bench panics;
//! every wait is bounded. Everything listens on and talks to 127.0.0.1 only. Under
//! `cargo test` (no `--bench` argument) the bench does nothing.

#[path = "common/proc.rs"]
mod proc;
#[path = "common/scale.rs"]
#[allow(dead_code)] // `scaled` counts calls; this bench scales durations
mod scale;
#[path = "common/stdout.rs"]
mod stdout;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use scale::scale_factor;
use serde_json::{Value, json};

/// Upper bound on every start-up wait and on each single request of the harness itself.
const WAIT: Duration = Duration::from_secs(30);
/// Rounds per scenario, and the length of one target's run in a round (× BENCH_SCALE).
const ROUNDS: usize = 5;
const ROUND_SECS: f64 = 3.0;
/// A short run per target before a scenario's rounds (connections, upstream links).
const WARMUP_SECS: f64 = 1.0;
const STATELESS: &str = "2026-07-28";
const HANDSHAKE: &str = "2025-11-25";
/// Distinct request ids in each body file oha picks from.
const BODY_LINES: usize = 16_384;
/// Records in a `tools/call` with big arguments (about 1 MiB of JSON), and how many such
/// bodies (ids) the body file holds.
const BIG_ARGUMENT_ITEMS: usize = 16_000;
const BIG_BODY_LINES: usize = 8;
const LIST_UPSTREAMS: usize = 20;
const LIST_TOOLS: usize = 100;
const SESSIONS: usize = 10_000;
const SESSION_WORKERS: usize = 16;
const READY_UPSTREAMS: usize = 4;
const READY_STARTS: usize = 7;
/// CPUs for the pinned set-up: the load generator, and everything it loads.
const CLIENT_CPU: &str = "0";
const SERVER_CPU: &str = "1";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load: skipped (run it with scripts/bench load)");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bench = Bench::new();
    let report = bench.run();
    print!("{report}");
    let out = bench.target_dir.join("bench-load.txt");
    std::fs::write(&out, &report).expect("write the report");
    println!("written to {}", out.display());
}

/// Everything the run needs that does not change during it.
struct Bench {
    manifold: PathBuf,
    baseline: Option<PathBuf>,
    upstream_bin: PathBuf,
    bare_proxy_bin: PathBuf,
    oha: PathBuf,
    haproxy: Option<PathBuf>,
    pin: bool,
    clk_tck: f64,
    target_dir: PathBuf,
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Bench {
    fn new() -> Bench {
        let manifold = PathBuf::from(env!("CARGO_BIN_EXE_manifold"));
        let release_dir = manifold.parent().expect("binary directory").to_path_buf();
        let target_dir = release_dir
            .parent()
            .expect("target directory")
            .to_path_buf();
        let upstream_bin = release_dir.join("examples").join("bench_upstream");
        let bare_proxy_bin = release_dir.join("examples").join("bare_proxy");
        for example in [&upstream_bin, &bare_proxy_bin] {
            assert!(
                example.is_file(),
                "{} is missing: `cargo bench` does not build examples; run scripts/bench load, \
                 or `cargo build --release --example bench_upstream --example bare_proxy` first",
                example.display()
            );
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let oha = std::env::var_os("OHA")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".bench/oha/bin/oha"));
        assert!(
            oha.is_file(),
            "{} is missing: scripts/bench load installs it (cargo install oha --locked \
             --root .bench/oha), or name an oha binary in OHA",
            oha.display()
        );
        let baseline = std::env::var_os("MANIFOLD_BASELINE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(path) = &baseline {
            assert!(
                path.is_file(),
                "MANIFOLD_BASELINE={} is not a file (it must name a manifold binary)",
                path.display()
            );
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = cpus >= 2 && on_path("taskset").is_some();
        let clk_tck = run_text("getconf", &["CLK_TCK"])
            .and_then(|t| t.trim().parse::<f64>().ok())
            .unwrap_or(100.0);
        let dir = tempfile::Builder::new()
            .prefix("bench-load-")
            .tempdir_in(&target_dir)
            .expect("temporary directory");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(WAIT)
            .build()
            .expect("reqwest client");
        Bench {
            manifold,
            baseline,
            upstream_bin,
            bare_proxy_bin,
            oha,
            haproxy: on_path("haproxy"),
            pin,
            clk_tck,
            target_dir,
            dir,
            runtime,
            http,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `program` pinned to `cpu` when pinning is on (`taskset` execs it: the pid is the
    /// program's own).
    fn command(&self, cpu: &str, program: &Path) -> Command {
        if self.pin {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpu]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn scaled_secs(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * scale_factor()).max(0.2))
    }

    /// Every measurement, then the report.
    fn run(&self) -> String {
        let load_start = loadavg();
        let started = Instant::now();
        let date = run_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();

        // Declared in start order, so they stop in reverse: proxies first, the upstream last.
        let (upstream, upstream_url) = Proc::spawn(
            "bench_upstream",
            self.command(SERVER_CPU, &self.upstream_bin)
                .args(["--listen", "127.0.0.1:0"]),
            &self.path("upstream.log"),
            "http://",
        );
        let upstream_url = format!("http://{upstream_url}");
        let http_yaml = format!("upstreams:\n  bench:\n    url: {upstream_url:?}\n");
        let stdio_yaml = format!(
            "upstreams:\n  bench:\n    command: {:?}\n    args: [\"--stdio\"]\n",
            self.upstream_bin.display().to_string()
        );
        let gw_http = self.gateways("manifold", &default_pipeline(&http_yaml));
        let gw_stdio = self.gateways("manifold-stdio", &default_pipeline(&stdio_yaml));
        let haproxy = self
            .haproxy
            .as_ref()
            .map(|bin| self.start_haproxy(bin, &upstream_url));
        let (bare_proxy, bare_proxy_url) = Proc::spawn(
            "bare_proxy",
            self.command(SERVER_CPU, &self.bare_proxy_bin).args([
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &upstream_url,
            ]),
            &self.path("bare_proxy.log"),
            "http://",
        );

        let mut targets = vec![Target {
            name: "direct".into(),
            url: upstream_url.clone(),
            prefixed: false,
            proxy: None,
            upstream: Ups::Pid(upstream.pid()),
            twin_of: None,
        }];
        for (set, upstream_pids) in [(&gw_http, Some(upstream.pid())), (&gw_stdio, None)] {
            let first = targets.len();
            for (i, gw) in set.iter().enumerate() {
                targets.push(Target {
                    name: gw.name.clone(),
                    url: gw.url.clone(),
                    prefixed: true,
                    proxy: Some(gw.proc.pid()),
                    upstream: upstream_pids.map_or(Ups::ChildrenOf(gw.proc.pid()), Ups::Pid),
                    twin_of: (i > 0).then_some(first),
                });
            }
        }
        if let Some((proc, url)) = &haproxy {
            targets.push(Target {
                name: "haproxy".into(),
                url: url.clone(),
                prefixed: false,
                proxy: Some(proc.pid()),
                upstream: Ups::Pid(upstream.pid()),
                twin_of: None,
            });
        }
        targets.push(Target {
            name: "bare-proxy".into(),
            url: format!("http://{bare_proxy_url}"),
            prefixed: false,
            proxy: Some(bare_proxy.pid()),
            upstream: Ups::Pid(upstream.pid()),
            twin_of: None,
        });
        for t in targets.iter().filter(|t| t.proxy.is_some() && t.prefixed) {
            self.wait_ready(&t.url);
        }

        let scenarios = [
            Scenario::call(Era::Stateless, 16),
            Scenario::call(Era::Stateless, 64),
            Scenario::call(Era::Session, 16),
            Scenario::call(Era::Session, 64),
            Scenario::call(Era::Stateless, 1),
            Scenario::call(Era::Session, 1),
            Scenario {
                method: Method::BigCall,
                era: Era::Stateless,
                conns: 1,
            },
        ];
        let mut results = Vec::new();
        let mut audits = Audits::new();
        for scenario in &scenarios {
            eprintln!("load: {}", scenario.title());
            results.push(self.scenario(scenario, &targets));
            for gw in gw_http.iter().chain(&gw_stdio) {
                audits.scan(gw);
            }
        }
        drop(bare_proxy);
        drop(haproxy);
        drop(gw_stdio);
        drop(gw_http);

        let extras = self.extras(&upstream_url, &mut audits);
        drop(upstream);

        let mut text = String::new();
        self.header(&mut text, &date, &load_start, &targets);
        main_table(
            &mut text,
            &targets,
            &scenarios,
            &results,
            self.haproxy.is_some(),
        );
        cpu_table(&mut text, &targets, &scenarios, &results, self.pin);
        extras_table(&mut text, &extras, self.baseline.is_some());
        if self.baseline.is_some() {
            baseline_table(&mut text, &targets, &scenarios, &results, &extras);
        }
        status_report(&mut text, &targets, &scenarios, &results, &extras);
        audits.report(&mut text);
        let _ = writeln!(
            text,
            "\nfinished in {:.0} s; load average {load_start} at start, {} at end",
            started.elapsed().as_secs_f64(),
            loadavg()
        );
        text
    }

    /// The gateway `name` with `yaml`, and its baseline twin when there is a baseline.
    fn gateways(&self, name: &str, yaml: &str) -> Vec<Gateway> {
        let mut all = vec![self.gateway(&self.manifold, name, yaml)];
        if let Some(base) = &self.baseline {
            all.push(self.gateway(base, &format!("{name}@base"), yaml));
        }
        all
    }

    /// `manifold serve` (the binary `bin`) with `yaml`, on a free loopback port, pinned with
    /// the upstreams.
    fn gateway(&self, bin: &Path, name: &str, yaml: &str) -> Gateway {
        let (proc, url, _) = self.spawn_gateway(bin, name, yaml);
        Gateway {
            name: name.to_owned(),
            url,
            proc,
        }
    }

    fn spawn_gateway(&self, bin: &Path, name: &str, yaml: &str) -> (Proc, String, Instant) {
        let config = self.path(&format!("{name}.yaml"));
        std::fs::write(&config, yaml).expect("write gateway config");
        let mut cmd = self.command(SERVER_CPU, bin);
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
        let spawned = Instant::now();
        let (proc, url) = Proc::spawn(
            name,
            &mut cmd,
            &self.path(&format!("{name}.log")),
            "manifold listening on ",
        );
        (proc, url, spawned)
    }

    /// HAProxy in http mode, one thread, in front of the upstream; its endpoint.
    fn start_haproxy(&self, bin: &Path, upstream_url: &str) -> (Proc, String) {
        let upstream = upstream_url
            .strip_prefix("http://")
            .and_then(|u| u.strip_suffix("/mcp"))
            .expect("upstream URL");
        let port = free_port();
        let config = self.path("haproxy.cfg");
        let text = format!(
            "global\n    nbthread 1\n    maxconn 4096\n\
             defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    \
             timeout server 60s\n    timeout http-keep-alive 60s\n\
             frontend bench\n    bind 127.0.0.1:{port}\n    default_backend upstream\n\
             backend upstream\n    server up {upstream}\n"
        );
        std::fs::write(&config, text).expect("write haproxy config");
        let log = self.path("haproxy.log");
        let mut cmd = self.command(SERVER_CPU, bin);
        cmd.arg("-db").arg("-f").arg(&config);
        let proc = Proc::start("haproxy", &mut cmd, &log);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {port} within {WAIT:?}; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        (proc, format!("http://127.0.0.1:{port}/mcp"))
    }

    /// Polls `/readyz` next to the endpoint `url` until it answers 200.
    fn wait_ready(&self, url: &str) {
        let base = url.strip_suffix("/mcp").expect("endpoint path is /mcp");
        let readyz = format!("{base}/readyz");
        let deadline = Instant::now() + WAIT;
        loop {
            let status = self
                .runtime
                .block_on(async { self.http.get(&readyz).send().await })
                .map(|r| r.status().as_u16());
            if matches!(status, Ok(200)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{readyz} not 200 after {WAIT:?}: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The body file for `method` in `era`, tool names prefixed or not: BODY_LINES requests
    /// numbered 1.. (oha sends a random line each time, so ids vary as a client's would).
    fn body_file(&self, method: Method, era: Era, prefixed: bool) -> PathBuf {
        let path = self.path(&format!(
            "{}-{}-{}.jsonl",
            method.short(),
            era.short(),
            if prefixed { "gw" } else { "up" }
        ));
        if !path.exists() {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("body"));
            let lines = if method == Method::BigCall {
                BIG_BODY_LINES
            } else {
                BODY_LINES
            };
            for id in 1..=lines {
                let body = request_body(method, era, prefixed, id);
                writeln!(out, "{body}").expect("write body");
            }
            out.flush().expect("write body");
        }
        path
    }

    /// The headers a request of `scenario` carries to `target` (beyond Content-Type and
    /// Accept), opening its session first in the handshake era.
    fn headers(&self, scenario: &Scenario, target: &Target) -> Vec<(String, String)> {
        match scenario.era {
            Era::Stateless => {
                let mut h = vec![
                    ("MCP-Protocol-Version".into(), STATELESS.into()),
                    ("Mcp-Method".into(), scenario.method.name().into()),
                ];
                if scenario.method != Method::List {
                    h.push(("Mcp-Name".into(), tool_name(target.prefixed).into()));
                }
                h
            }
            Era::Session => {
                let session = self.runtime.block_on(open_session(&self.http, &target.url));
                vec![
                    ("Mcp-Session-Id".into(), session),
                    ("MCP-Protocol-Version".into(), HANDSHAKE.into()),
                ]
            }
        }
    }

    /// One request as oha will send it, checked by hand: the answer must be a result.
    fn check(&self, scenario: &Scenario, target: &Target, headers: &[(String, String)]) {
        let body = request_body(scenario.method, scenario.era, target.prefixed, 1);
        let reply = self.runtime.block_on(async {
            let mut req = self
                .http
                .post(&target.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let resp = req.body(body).send().await?;
            let status = resp.status().as_u16();
            resp.text().await.map(|text| (status, text))
        });
        let (status, text) =
            reply.unwrap_or_else(|e| panic!("{} ({}): {e}", target.name, scenario.title()));
        let wanted = match scenario.method {
            Method::Call | Method::BigCall => "\"text\":\"ok\"",
            Method::List => "\"tools\":[",
        };
        assert!(
            status == 200 && text.contains(wanted),
            "{} ({}): HTTP {status}: {}",
            target.name,
            scenario.title(),
            text.chars().take(500).collect::<String>()
        );
    }

    /// One scenario over every target: warm-up, then ROUNDS alternating rounds.
    fn scenario(&self, scenario: &Scenario, targets: &[Target]) -> Vec<Vec<Visit>> {
        let mut plans = Vec::new();
        for t in targets {
            let headers = self.headers(scenario, t);
            self.check(scenario, t, &headers);
            let body = self.body_file(scenario.method, scenario.era, t.prefixed);
            plans.push((headers, body));
        }
        let warmup = self.scaled_secs(WARMUP_SECS);
        for (t, (headers, body)) in targets.iter().zip(&plans) {
            self.oha(&t.url, scenario.conns, warmup, headers, body);
        }
        let round = self.scaled_secs(ROUND_SECS);
        let mut visits: Vec<Vec<Visit>> = targets.iter().map(|_| Vec::new()).collect();
        for r in 0..ROUNDS {
            for i in order(r, targets.len()) {
                let (headers, body) = &plans[i];
                visits[i].push(self.visit(&targets[i], scenario.conns, round, headers, body));
            }
        }
        visits
    }

    /// One oha run on `target`, with the CPU its processes spent meanwhile.
    fn visit(
        &self,
        target: &Target,
        conns: usize,
        duration: Duration,
        headers: &[(String, String)],
        body: &Path,
    ) -> Visit {
        let upstream_pids = target.upstream.pids();
        let proxy_before = target.proxy.map(cpu_ticks);
        let upstream_before: u64 = upstream_pids.iter().map(|p| cpu_ticks(*p).total()).sum();
        let run = self.oha(&target.url, conns, duration, headers, body);
        let proxy_after = target.proxy.map(cpu_ticks);
        let upstream_after: u64 = upstream_pids.iter().map(|p| cpu_ticks(*p).total()).sum();
        let per_call =
            |ticks: u64| ticks as f64 / self.clk_tck * 1e6 / (run.completed.max(1)) as f64;
        let proxy = proxy_before.zip(proxy_after);
        Visit {
            proxy_us: proxy.map(|(b, a)| per_call(a.total().saturating_sub(b.total()))),
            proxy_system_us: proxy.map(|(b, a)| per_call(a.system.saturating_sub(b.system))),
            upstream_us: (!upstream_pids.is_empty())
                .then(|| per_call(upstream_after.saturating_sub(upstream_before))),
            run,
        }
    }

    /// Runs oha for `duration` at `conns` keep-alive connections, POSTing a random line of
    /// `body` each time; what it reported.
    fn oha(
        &self,
        url: &str,
        conns: usize,
        duration: Duration,
        headers: &[(String, String)],
        body: &Path,
    ) -> OhaRun {
        let out = self.path("oha.json");
        let _ = std::fs::remove_file(&out);
        let mut cmd = self.command(CLIENT_CPU, &self.oha);
        cmd.args(["--no-tui", "--output-format", "json", "--no-color"])
            .arg("-o")
            .arg(&out)
            .args(["-z", &format!("{}ms", duration.as_millis())])
            // Requests still running at the deadline are waited for, not counted as errors.
            .arg("-w")
            .args(["-c", &conns.to_string()])
            .args(["-m", "POST", "-T", "application/json"])
            .args(["-A", "application/json, text/event-stream"])
            .args(["-t", "30s", "--disable-compression"])
            .arg("-Z")
            .arg(body);
        if self.pin {
            cmd.args(["--worker-threads", "1"]);
        }
        for (k, v) in headers {
            cmd.arg("-H").arg(format!("{k}: {v}"));
        }
        cmd.arg(url);
        let log = self.path("oha.log");
        let mut guard = Guard(Some(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("oha log"))
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {}: {e}", self.oha.display())),
        ));
        let deadline = Instant::now() + duration + Duration::from_secs(60);
        let status = loop {
            let child = guard.0.as_mut().expect("oha child");
            if let Some(status) = child.try_wait().expect("wait for oha") {
                guard.0 = None;
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "oha on {url} still running 60 s after its {duration:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            status.success(),
            "oha on {url} failed ({status}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let text = std::fs::read_to_string(&out).expect("oha output");
        OhaRun::parse(&text)
    }

    /// The gateway-only figures: the merged listing, memory, time to ready.
    fn extras(&self, upstream_url: &str, audits: &mut Audits) -> Extras {
        let mut builds: Vec<(&str, &Path)> = vec![("current", &self.manifold)];
        if let Some(base) = &self.baseline {
            builds.push(("baseline", base));
        }

        // The merged tools/list from the catalog: all in one page, then the first page of the
        // default size.
        let mut lists = Vec::new();
        for page_size in [LIST_UPSTREAMS * LIST_TOOLS, 100] {
            eprintln!(
                "load: merged tools/list, {LIST_UPSTREAMS} upstreams × {LIST_TOOLS} tools, \
                 page_size {page_size}"
            );
            let mut yaml = format!("page_size: {page_size}\nupstreams:\n");
            for i in 0..LIST_UPSTREAMS {
                let _ = write!(
                    yaml,
                    "  u{i:02}:\n    command: {:?}\n    args: [\"--stdio\", \"--tools\", \"{LIST_TOOLS}\"]\n",
                    self.upstream_bin.display().to_string()
                );
            }
            let gws: Vec<Gateway> = builds
                .iter()
                .map(|(label, bin)| {
                    let twin = if *label == "current" { "" } else { "@base" };
                    let name = format!("manifold-list{page_size}{twin}");
                    self.gateway(bin, &name, &default_pipeline(&yaml))
                })
                .collect();
            let targets: Vec<Target> = gws
                .iter()
                .enumerate()
                .map(|(i, gw)| Target {
                    name: gw.name.clone(),
                    url: gw.url.clone(),
                    prefixed: true,
                    proxy: Some(gw.proc.pid()),
                    upstream: Ups::ChildrenOf(gw.proc.pid()),
                    twin_of: (i > 0).then_some(0),
                })
                .collect();
            for t in &targets {
                self.wait_ready(&t.url);
                self.check_listing(t, page_size.min(LIST_UPSTREAMS * LIST_TOOLS));
            }
            for era in [Era::Stateless, Era::Session] {
                let scenario = Scenario {
                    method: Method::List,
                    era,
                    conns: 1,
                };
                eprintln!("load: {}, page_size {page_size}", scenario.title());
                let visits = self.scenario(&scenario, &targets);
                lists.push(ListRun {
                    scenario,
                    page_size,
                    targets: targets.clone(),
                    visits,
                });
            }
            for gw in &gws {
                audits.scan(gw);
            }
        }

        // Memory: idle, then with SESSIONS sessions.
        eprintln!("load: RSS, idle and with {SESSIONS} sessions");
        let sessions_yaml = format!(
            "sessions:\n  max: {}\n  per_source: 0\n  unused_timeout: 10m\n\
             connections:\n  per_source: 0\n{}",
            SESSIONS * 2,
            format_args!("upstreams:\n  bench:\n    url: {upstream_url:?}\n")
        );
        let mut memory = Vec::new();
        for (label, bin) in &builds {
            memory.push(self.memory(label, bin, &default_pipeline(&sessions_yaml)));
        }

        // Time to ready.
        eprintln!("load: time to ready, {READY_UPSTREAMS} stdio upstreams × {READY_STARTS} starts");
        let mut ready_yaml = String::from("upstreams:\n");
        for i in 0..READY_UPSTREAMS {
            let _ = write!(
                ready_yaml,
                "  r{i}:\n    command: {:?}\n    args: [\"--stdio\"]\n",
                self.upstream_bin.display().to_string()
            );
        }
        let ready_yaml = default_pipeline(&ready_yaml);
        let mut ready: Vec<Vec<f64>> = builds.iter().map(|_| Vec::new()).collect();
        for start in 0..READY_STARTS {
            for b in order(start, builds.len()) {
                let (label, bin) = builds[b];
                ready[b].push(self.time_to_ready(bin, &format!("ready-{label}"), &ready_yaml));
            }
        }

        Extras {
            builds: builds.iter().map(|(l, _)| (*l).to_owned()).collect(),
            lists,
            memory,
            ready,
        }
    }

    /// The merged listing's first page holds `expected` tools.
    fn check_listing(&self, target: &Target, expected: usize) {
        let result = self.runtime.block_on(async {
            let resp = self
                .http
                .post(&target.url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("MCP-Protocol-Version", STATELESS)
                .header("Mcp-Method", "tools/list")
                .body(request_body(Method::List, Era::Stateless, true, 1))
                .send()
                .await?;
            resp.json::<Value>().await
        });
        let result = result.unwrap_or_else(|e| panic!("{}: tools/list: {e}", target.name));
        let tools = result["result"]["tools"].as_array().map_or(0, Vec::len);
        assert_eq!(
            tools, expected,
            "{}: tools/list answered {} tools (nextCursor {})",
            target.name, tools, result["result"]["nextCursor"]
        );
    }

    /// VmRSS of a fresh gateway once ready and settled, and after SESSIONS sessions.
    fn memory(&self, label: &str, bin: &Path, yaml: &str) -> Memory {
        let name = format!("sessions-{label}");
        let (proc, url, _) = self.spawn_gateway(bin, &name, yaml);
        self.wait_ready(&url);
        std::thread::sleep(Duration::from_millis(500));
        let idle_kb = vm_rss_kb(proc.pid());
        let started = Instant::now();
        self.runtime.block_on(open_sessions(&url, SESSIONS));
        let opening = started.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        let loaded_kb = vm_rss_kb(proc.pid());
        let readyz: Value = self
            .runtime
            .block_on(async {
                let base = url.strip_suffix("/mcp").expect("endpoint");
                self.http
                    .get(format!("{base}/readyz"))
                    .send()
                    .await?
                    .json()
                    .await
            })
            .expect("readyz");
        let live = readyz["sessions"].as_u64().unwrap_or(0);
        drop(proc);
        Memory {
            idle_kb,
            loaded_kb,
            live,
            opening,
        }
    }

    /// Milliseconds from spawning the gateway to its first `/readyz` 200, polled every
    /// millisecond.
    fn time_to_ready(&self, bin: &Path, name: &str, yaml: &str) -> f64 {
        let (proc, url, spawned) = self.spawn_gateway(bin, name, yaml);
        let readyz = format!("{}/readyz", url.strip_suffix("/mcp").expect("endpoint"));
        let elapsed = self.runtime.block_on(async {
            let deadline = spawned + WAIT;
            loop {
                if let Ok(resp) = self.http.get(&readyz).send().await
                    && resp.status() == 200
                {
                    return spawned.elapsed();
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: /readyz not 200 within {WAIT:?}"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        drop(proc);
        elapsed.as_secs_f64() * 1e3
    }

    fn header(&self, text: &mut String, date: &str, load: &str, targets: &[Target]) {
        let _ = writeln!(text, "\nManifold load benchmark (issue 14)");
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_owned())
            })
            .unwrap_or_else(|| "?".into());
        let _ = writeln!(
            text,
            "  machine: {} CPUs ({cpu_model}), load average {load} at start",
            run_text("nproc", &[]).map_or_else(|| "?".into(), |n| n.trim().to_owned())
        );
        let _ = writeln!(text, "  date: {}", date.trim());
        let _ = writeln!(text, "  commit: {}", git_describe());
        let command = std::env::var("BENCH_COMMAND")
            .unwrap_or_else(|_| "cargo bench --bench load".to_owned());
        let _ = writeln!(text, "  command: {command}");
        let scale = scale_factor();
        let round = self.scaled_secs(ROUND_SECS).as_secs_f64();
        let _ = writeln!(
            text,
            "  BENCH_SCALE={scale}: {ROUNDS} rounds of {round:.1} s per target and scenario, \
             after {:.1} s of warm-up; medians over rounds",
            self.scaled_secs(WARMUP_SECS).as_secs_f64()
        );
        let oha_version = run_text(&self.oha.to_string_lossy(), &["--version"])
            .map_or_else(|| "?".into(), |v| v.trim().to_owned());
        let _ = writeln!(
            text,
            "  load generator: {oha_version}, keep-alive connections, one POST per call (request ids vary)"
        );
        let _ = writeln!(
            text,
            "  pinning: {}",
            if self.pin {
                "oha on CPU 0; upstream, gateways and haproxy on CPU 1 (taskset)"
            } else {
                "none (fewer than 2 CPUs or no taskset)"
            }
        );
        for t in targets.iter().filter(|t| t.twin_of.is_none()) {
            let about = match t.name.as_str() {
                "direct" => "oha → bench_upstream (HTTP, plain JSON answers)",
                "manifold" => {
                    "oha → manifold → bench_upstream over HTTP; default pipeline (trace, \
                     metrics, audit), response_mode: stream"
                }
                "manifold-stdio" => {
                    "oha → manifold → bench_upstream --stdio (two processes: one per era)"
                }
                "haproxy" => "oha → HAProxy (http mode, 1 thread) → bench_upstream",
                "bare-proxy" => {
                    "oha → examples/bare_proxy (hyper, no MCP work) → bench_upstream: the \
                     floor of manifold's stack"
                }
                _ => "",
            };
            let _ = writeln!(text, "  {:<15} {about}", t.name);
        }
        match &self.haproxy {
            Some(bin) => {
                let version = run_text(&bin.to_string_lossy(), &["-v"])
                    .and_then(|v| v.lines().next().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(text, "  haproxy: {version}");
            }
            None => {
                let _ = writeln!(
                    text,
                    "  haproxy: not installed, so no haproxy target (scripts/bench load installs \
                     it with apt-get when run as root)"
                );
            }
        }
        if let Some(base) = &self.baseline {
            let _ = writeln!(
                text,
                "  NAME@base: the same gateway on the baseline build\n  current:  {}\n  \
                 baseline: {}{}",
                fingerprint(&self.manifold),
                fingerprint(base),
                std::env::var("MANIFOLD_BASELINE_LABEL")
                    .map(|l| format!(", {l}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// A gateway config: the pipeline sections of `gateway.yaml` left at their defaults (trace,
/// metrics and audit on), its path and separator, and the upstream part given.
fn default_pipeline(rest: &str) -> String {
    format!("path: /mcp\nseparator: \"__\"\n{rest}")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Era {
    /// 2026-07-28: no session, every request carries its version.
    Stateless,
    /// 2025-11-25 with a session opened first.
    Session,
}

impl Era {
    fn short(self) -> &'static str {
        match self {
            Era::Stateless => "26",
            Era::Session => "25",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Era::Stateless => "2026-07-28",
            Era::Session => "2025-11-25 session",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Call,
    /// `tools/call` with about 1 MiB of arguments (BIG_ARGUMENT_ITEMS small objects).
    BigCall,
    List,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Call | Method::BigCall => "tools/call",
            Method::List => "tools/list",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Method::Call => "call",
            Method::BigCall => "bigcall",
            Method::List => "list",
        }
    }
}

#[derive(Clone, Copy)]
struct Scenario {
    method: Method,
    era: Era,
    conns: usize,
}

impl Scenario {
    fn call(era: Era, conns: usize) -> Scenario {
        Scenario {
            method: Method::Call,
            era,
            conns,
        }
    }

    fn title(&self) -> String {
        format!(
            "{} {}{}, {} conn{}",
            self.era.label(),
            self.method.name(),
            if self.method == Method::BigCall {
                " (1 MiB args)"
            } else {
                ""
            },
            self.conns,
            if self.conns == 1 { "" } else { "s" }
        )
    }

    fn latency(&self) -> bool {
        self.conns == 1
    }
}

fn tool_name(prefixed: bool) -> &'static str {
    if prefixed { "bench__tool0" } else { "tool0" }
}

fn request_body(method: Method, era: Era, prefixed: bool, id: usize) -> String {
    let mut params = match method {
        Method::Call => json!({ "name": tool_name(prefixed), "arguments": {} }),
        Method::BigCall => json!({ "name": tool_name(prefixed), "arguments": big_arguments() }),
        Method::List => json!({}),
    };
    if era == Era::Stateless {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
    }
    json!({ "jsonrpc": "2.0", "id": id, "method": method.name(), "params": params }).to_string()
}

/// About 1 MiB of tool arguments shaped like real data: an array of small records.
fn big_arguments() -> Value {
    let items: Vec<Value> = (0..BIG_ARGUMENT_ITEMS)
        .map(|i| json!({ "id": i, "name": format!("item {i}"), "tags": ["a", "b"], "score": i as f64 / 8.0 }))
        .collect();
    json!({ "items": items })
}

/// Opens a handshake-era session on `url`: `initialize`, then `notifications/initialized`.
async fn open_session(http: &reqwest::Client, url: &str) -> String {
    let init = json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE,
            "capabilities": {},
            "clientInfo": { "name": "bench-load", "version": "1" },
        },
    });
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(init.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("initialize at {url}: {e}"));
    let status = resp.status();
    let session = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.text().await.unwrap_or_default();
    let Some(session) = session.filter(|_| status == 200 && body.contains(HANDSHAKE)) else {
        panic!("initialize at {url}: HTTP {status}, no session: {body}");
    };
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", HANDSHAKE)
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("notifications/initialized at {url}: {e}"));
    assert_eq!(
        resp.status(),
        202,
        "notifications/initialized at {url}: HTTP {}",
        resp.status()
    );
    session
}

/// Opens `count` sessions on `url` from SESSION_WORKERS keep-alive connections.
async fn open_sessions(url: &str, count: usize) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .pool_max_idle_per_host(SESSION_WORKERS)
        .build()
        .expect("reqwest client");
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..SESSION_WORKERS)
        .map(|_| {
            let (http, url, next) = (http.clone(), url.to_owned(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    open_session(&http, &url).await;
                }
            })
        })
        .collect();
    let all = futures::future::join_all(workers);
    match tokio::time::timeout(Duration::from_secs(600), all).await {
        Ok(done) => {
            for d in done {
                d.expect("a session worker panicked");
            }
        }
        Err(_) => panic!("{count} sessions not opened within 600 s"),
    }
}

/// One endpoint under load.
#[derive(Clone)]
struct Target {
    name: String,
    url: String,
    /// Whether tool names carry the gateway's prefix (`bench__tool0`).
    prefixed: bool,
    /// The proxy in front of the upstream (gateway or HAProxy), whose CPU is counted.
    proxy: Option<u32>,
    upstream: Ups,
    /// For a target on the baseline build: the index of its twin on the current one.
    twin_of: Option<usize>,
}

/// Where a target's upstream processes are.
#[derive(Clone, Copy)]
enum Ups {
    Pid(u32),
    /// The gateway's `bench_upstream` children (stdio upstreams).
    ChildrenOf(u32),
}

impl Ups {
    fn pids(self) -> Vec<u32> {
        match self {
            Ups::Pid(pid) => vec![pid],
            Ups::ChildrenOf(parent) => upstream_children(parent),
        }
    }
}

struct Gateway {
    name: String,
    url: String,
    proc: Proc,
}

/// What oha reported for one run.
#[derive(Default)]
struct OhaRun {
    /// Successful (HTTP 200) responses per second.
    rps: f64,
    /// Responses received, whatever their status.
    completed: u64,
    p50_us: f64,
    p99_us: f64,
    statuses: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
}

impl OhaRun {
    fn parse(text: &str) -> OhaRun {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("oha printed no JSON ({e}): {text}"));
        let counts = |key: &str| -> BTreeMap<String, u64> {
            v[key]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let statuses = counts("statusCodeDistribution");
        let errors = counts("errorDistribution");
        let total = v["summary"]["total"].as_f64().unwrap_or(0.0);
        let ok = statuses.get("200").copied().unwrap_or(0);
        let percentile = |p: &str| v["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1e6;
        OhaRun {
            rps: ok as f64 / total.max(f64::MIN_POSITIVE),
            completed: statuses.values().sum(),
            p50_us: percentile("p50"),
            p99_us: percentile("p99"),
            statuses,
            errors,
        }
    }
}

/// One target's run in one round.
struct Visit {
    run: OhaRun,
    /// CPU µs per call of the proxy (of it, in the kernel), and of the upstream process(es).
    proxy_us: Option<f64>,
    proxy_system_us: Option<f64>,
    upstream_us: Option<f64>,
}

/// Medians over the rounds of one target in one scenario.
#[derive(Clone, Copy, Default)]
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    proxy_us: Option<f64>,
    proxy_system_us: Option<f64>,
    upstream_us: Option<f64>,
}

fn summarize(visits: &[Visit]) -> Summary {
    let of = |f: &dyn Fn(&Visit) -> f64| median(visits.iter().map(f).collect());
    let opt = |f: &dyn Fn(&Visit) -> Option<f64>| {
        let values: Vec<f64> = visits.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(values))
    };
    Summary {
        rps: of(&|v| v.run.rps),
        p50: of(&|v| v.run.p50_us),
        p99: of(&|v| v.run.p99_us),
        proxy_us: opt(&|v| v.proxy_us),
        proxy_system_us: opt(&|v| v.proxy_system_us),
        upstream_us: opt(&|v| v.upstream_us),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The gateway-only figures.
struct Extras {
    /// "current", and "baseline" when there is one.
    builds: Vec<String>,
    lists: Vec<ListRun>,
    /// Per build.
    memory: Vec<Memory>,
    /// Per build, ms per start.
    ready: Vec<Vec<f64>>,
}

/// One merged-listing scenario on the list gateways of one page size.
struct ListRun {
    scenario: Scenario,
    page_size: usize,
    targets: Vec<Target>,
    visits: Vec<Vec<Visit>>,
}

impl ListRun {
    fn title(&self) -> String {
        format!("{}, {} per page", self.scenario.title(), self.page_size)
    }
}

struct Memory {
    idle_kb: u64,
    loaded_kb: u64,
    /// Sessions `/readyz` counted after opening them.
    live: u64,
    opening: Duration,
}

impl Memory {
    fn per_session_kb(&self) -> f64 {
        self.loaded_kb.saturating_sub(self.idle_kb) as f64 / SESSIONS as f64
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn index(targets: &[Target], name: &str) -> Option<usize> {
    targets.iter().position(|t| t.name == name)
}

/// The main table: requests/s (and latency at 1 connection) per target, ratios against
/// direct, and the issue's target for the row.
fn main_table(
    out: &mut String,
    targets: &[Target],
    scenarios: &[Scenario],
    results: &[Vec<Vec<Visit>>],
    has_haproxy: bool,
) {
    let cols: Vec<usize> = ["manifold", "manifold-stdio", "haproxy", "bare-proxy"]
        .iter()
        .filter_map(|n| index(targets, n))
        .collect();
    let direct = index(targets, "direct").expect("direct target");
    let _ = writeln!(
        out,
        "\n══ throughput and latency (ratio = target / direct, same run) ══"
    );
    let _ = write!(out, "  {:<48} {:>9}", "scenario", "direct");
    for &c in &cols {
        let _ = write!(out, " │ {:>14} {:>6}", targets[c].name, "×dir");
    }
    if !has_haproxy {
        let _ = write!(out, " │ {:>14} {:>6}", "haproxy", "×dir");
    }
    let _ = writeln!(out, " │ issue 14 target (manifold)");
    for (s, visits) in scenarios.iter().zip(results) {
        let sums: Vec<Summary> = visits.iter().map(|v| summarize(v)).collect();
        let d = sums[direct];
        let rows: Vec<(String, Metric)> = if s.latency() {
            vec![
                (format!("{}, p50 µs", s.title()), |x| x.p50),
                (format!("{}, p99 µs", s.title()), |x| x.p99),
            ]
        } else {
            vec![(format!("{}, calls/s", s.title()), |x| x.rps)]
        };
        for (r, (label, get)) in rows.iter().enumerate() {
            let _ = write!(out, "  {label:<48} {:>9.0}", get(&d));
            for &c in &cols {
                let v = get(&sums[c]);
                let _ = write!(out, " │ {v:>14.0} {:>6.2}", v / get(&d));
            }
            if !has_haproxy {
                let _ = write!(out, " │ {:>14} {:>6}", "n/a", "");
            }
            let m = index(targets, "manifold")
                .map(|i| sums[i])
                .unwrap_or_default();
            let goal = match (s.latency(), r, s.era, s.conns) {
                (true, _, _, _) if s.method == Method::BigCall => {
                    let what = if r == 0 { "p50" } else { "p99" };
                    let added = get(&m) - get(&d);
                    format!("{what} added: +{added:.0} µs (no target)")
                }
                (false, _, Era::Stateless, 16) => {
                    let ratio = m.rps / d.rps;
                    format!("≥ 0.30 × direct: {} ({ratio:.2})", verdict(ratio >= 0.30))
                }
                (false, _, Era::Session, 16) => {
                    let ratio = m.rps / d.rps;
                    format!("≥ 0.25 × direct: {} ({ratio:.2})", verdict(ratio >= 0.25))
                }
                (true, 0, _, _) => {
                    let added = m.p50 - d.p50;
                    format!(
                        "p50 added ≤ 80 µs: {} (+{added:.0} µs)",
                        verdict(added <= 80.0)
                    )
                }
                (true, _, _, _) => format!("p99 added: +{:.0} µs", m.p99 - d.p99),
                _ => String::new(),
            };
            let _ = writeln!(out, " │ {goal}");
        }
    }
    let _ = writeln!(
        out,
        "  manifold-stdio's ratios are against the HTTP direct run (a stdio upstream has no \
         direct HTTP counterpart)"
    );
    // Whether the direct runs measured the upstream or the load generator.
    let busy: Vec<f64> = scenarios
        .iter()
        .zip(results)
        .filter(|(s, _)| !s.latency())
        .map(|(_, visits)| {
            let d = summarize(&visits[direct]);
            d.upstream_us.unwrap_or(0.0) * d.rps / 1e6
        })
        .collect();
    if busy.iter().any(|b| *b < 0.9) {
        let shown: Vec<String> = busy.iter().map(|b| format!("{b:.2}")).collect();
        let _ = writeln!(
            out,
            "  the direct runs kept the upstream only {} busy (CPU s/s): there oha's one core, \
             not the upstream, set the pace, so direct is a floor of the upstream's capacity and \
             the ratios are ceilings; CPU per call (below) does not depend on it",
            shown.join(", ")
        );
    }
}

/// CPU per call: the gateway's (or HAProxy's) and the upstream's, against the upstream's in
/// the direct run; and how busy the server side was (proxy + upstream CPU per second).
fn cpu_table(
    out: &mut String,
    targets: &[Target],
    scenarios: &[Scenario],
    results: &[Vec<Vec<Visit>>],
    pinned: bool,
) {
    let direct = index(targets, "direct").expect("direct target");
    let _ = writeln!(
        out,
        "\n══ CPU per call, µs (utime+stime from /proc/PID/stat, median over rounds) ══"
    );
    let _ = writeln!(
        out,
        "  proxy = the gateway (or haproxy) process, and of it the kernel's part (stime); \
         upstream = the upstream process(es) in the\n  same run; ×direct up = proxy / the \
         upstream's in the direct run; busy = (proxy + upstream) CPU seconds per second{}",
        if pinned {
            " (CPU 1 holds both: 1.00 = saturated)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  {:<40} {:<22} {:>9} {:>9} {:>7} {:>9} {:>6} {:>11} │ issue 14 target",
        "scenario", "target", "calls/s", "proxy", "kernel", "upstream", "busy", "×direct up"
    );
    for (s, visits) in scenarios.iter().zip(results) {
        let sums: Vec<Summary> = visits.iter().map(|v| summarize(v)).collect();
        let up = sums[direct].upstream_us.unwrap_or(f64::NAN);
        for (i, t) in targets.iter().enumerate() {
            let x = sums[i];
            let proxy = x.proxy_us.unwrap_or(f64::NAN);
            let kernel = x.proxy_system_us.unwrap_or(f64::NAN);
            let upstream = x.upstream_us.unwrap_or(f64::NAN);
            let busy = (x.proxy_us.unwrap_or(0.0) + upstream) * x.rps / 1e6;
            let ratio = proxy / up;
            let cell = |v: f64, p: usize| {
                if v.is_nan() {
                    "—".to_owned()
                } else {
                    format!("{v:.p$}")
                }
            };
            let goal = if t.name == "manifold" && s.method == Method::Call {
                format!("≤ 3 × direct up: {} ({ratio:.2})", verdict(ratio <= 3.0))
            } else {
                String::new()
            };
            let label = if i == 0 { s.title() } else { String::new() };
            let _ = writeln!(
                out,
                "  {label:<40} {:<22} {:>9.0} {:>9} {:>7} {:>9} {:>6.2} {:>11} │ {goal}",
                t.name,
                x.rps,
                cell(proxy, 1),
                cell(kernel, 1),
                cell(upstream, 1),
                busy,
                cell(ratio, 2),
            );
        }
    }
}

/// The gateway-only figures against their targets.
fn extras_table(out: &mut String, extras: &Extras, baseline: bool) {
    let _ = writeln!(out, "\n══ gateway alone ══");
    let _ = write!(out, "  {:<84} {:>9}", "figure", "current");
    if baseline {
        let _ = write!(out, " {:>9} {:>7}", "baseline", "×base");
    }
    let _ = writeln!(out, " │ issue 14 target");
    let row = |out: &mut String, label: &str, values: &[f64], goal: String| {
        let _ = write!(out, "  {label:<84} {:>9.1}", values[0]);
        if let Some(b) = values.get(1) {
            let _ = write!(out, " {b:>9.1} {:>7.3}", values[0] / b);
        }
        let _ = writeln!(out, " │ {goal}");
    };
    for run in &extras.lists {
        let sums: Vec<Summary> = run.visits.iter().map(|v| summarize(v)).collect();
        let p50: Vec<f64> = sums.iter().map(|s| s.p50).collect();
        let p99: Vec<f64> = sums.iter().map(|s| s.p99).collect();
        let all = run.page_size >= LIST_UPSTREAMS * LIST_TOOLS;
        let what = format!(
            "tools/list {}, {}, 1 conn",
            if all {
                "of all 2000 tools in one page".to_owned()
            } else {
                format!("first page of {} of 2000", run.page_size)
            },
            run.scenario.era.label()
        );
        let goal = if all {
            format!("p50 < 1 ms: {}", verdict(p50[0] < 1000.0))
        } else {
            String::new()
        };
        row(out, &format!("{what}, p50 µs"), &p50, goal);
        row(out, &format!("{what}, p99 µs"), &p99, String::new());
        let cpu: Vec<f64> = sums
            .iter()
            .map(|s| s.proxy_us.unwrap_or(f64::NAN))
            .collect();
        row(out, &format!("{what}, gateway CPU µs"), &cpu, String::new());
    }
    let idle: Vec<f64> = extras
        .memory
        .iter()
        .map(|m| m.idle_kb as f64 / 1024.0)
        .collect();
    row(
        out,
        "RSS idle after start (1 HTTP upstream), MiB",
        &idle,
        format!("< 20 MiB: {}", verdict(idle[0] < 20.0)),
    );
    let loaded: Vec<f64> = extras
        .memory
        .iter()
        .map(|m| m.loaded_kb as f64 / 1024.0)
        .collect();
    row(
        out,
        &format!("RSS with {SESSIONS} idle handshake-era sessions, MiB"),
        &loaded,
        String::new(),
    );
    let per: Vec<f64> = extras.memory.iter().map(Memory::per_session_kb).collect();
    row(
        out,
        "RSS per idle session, KiB",
        &per,
        format!("< 20 KB each: {}", verdict(per[0] * 1.024 < 20.0)),
    );
    let ready: Vec<f64> = extras.ready.iter().map(|r| median(r.clone())).collect();
    row(
        out,
        &format!("time to ready, {READY_UPSTREAMS} stdio upstreams, ms (median of {READY_STARTS})"),
        &ready,
        format!("< 100 ms: {}", verdict(ready[0] < 100.0)),
    );
    for (build, m) in extras.builds.iter().zip(&extras.memory) {
        let _ = writeln!(
            out,
            "  {build}: {} sessions live after opening {SESSIONS} in {:.1} s",
            m.live,
            m.opening.as_secs_f64()
        );
    }
    for (build, r) in extras.builds.iter().zip(&extras.ready) {
        let all: Vec<String> = r.iter().map(|ms| format!("{ms:.1}")).collect();
        let _ = writeln!(
            out,
            "  {build}: time to ready per start, ms: {}",
            all.join(" ")
        );
    }
    let _ = writeln!(
        out,
        "  tools/list: {LIST_UPSTREAMS} stdio upstreams × {LIST_TOOLS} tools merged, answered from \
         the gateway's catalog; page_size 2000 (all in one answer) and 100 (the default)"
    );
}

/// Current / baseline ratios of every gateway target with a twin, and the geometric mean of
/// each kind of ratio.
fn baseline_table(
    out: &mut String,
    targets: &[Target],
    scenarios: &[Scenario],
    results: &[Vec<Vec<Visit>>],
    extras: &Extras,
) {
    let _ = writeln!(
        out,
        "\n══ current / baseline, same rounds (calls/s: <1 is fewer; latency and CPU: >1 is more) ══"
    );
    let _ = writeln!(
        out,
        "  {:<68} {:<22} {:>10} {:>10} {:>7} │ {:>13}",
        "scenario", "config", "current", "baseline", "ratio", "per round"
    );
    // Per kind (calls/s, p50, CPU per call): the logarithms of the ratios.
    let mut logs: [Vec<f64>; 3] = Default::default();
    let spread = |cur: &[Visit], base: &[Visit], get: &dyn Fn(&Visit) -> f64| {
        cur.iter()
            .zip(base)
            .map(|(c, b)| get(c) / get(b))
            .fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
                (lo.min(r), hi.max(r))
            })
    };
    for (s, title, visits, targets) in measured(targets, scenarios, results, extras) {
        for (b, t) in targets.iter().enumerate() {
            let Some(c) = t.twin_of else { continue };
            let (cur, base) = (summarize(&visits[c]), summarize(&visits[b]));
            // (kind, figure, current, baseline, lowest and highest per-round ratio)
            let mut rows: Vec<BaseRow> = Vec::new();
            if s.latency() {
                let get = |v: &Visit| v.run.p50_us;
                let rounds = spread(&visits[c], &visits[b], &get);
                rows.push((1, "p50 µs", cur.p50, base.p50, rounds));
            } else {
                let get = |v: &Visit| v.run.rps;
                let rounds = spread(&visits[c], &visits[b], &get);
                rows.push((0, "calls/s", cur.rps, base.rps, rounds));
            }
            let get = |v: &Visit| v.proxy_us.unwrap_or(f64::NAN);
            let rounds = spread(&visits[c], &visits[b], &get);
            let cpu = |s: Summary| s.proxy_us.unwrap_or(f64::NAN);
            rows.push((2, "gateway CPU µs/call", cpu(cur), cpu(base), rounds));
            for (kind, what, c_value, b_value, (lo, hi)) in rows {
                let ratio = c_value / b_value;
                if ratio.is_finite() && ratio > 0.0 {
                    logs[kind].push(ratio.ln());
                }
                let _ = writeln!(
                    out,
                    "  {:<68} {:<22} {c_value:>10.1} {b_value:>10.1} {ratio:>7.3} │ {lo:>6.3}–{hi:<6.3}",
                    format!("{title}, {what}"),
                    targets[c].name
                );
            }
        }
    }
    for (kind, what) in ["calls/s", "p50 latency", "gateway CPU per call"]
        .iter()
        .enumerate()
    {
        if logs[kind].is_empty() {
            continue;
        }
        let geo = (logs[kind].iter().sum::<f64>() / logs[kind].len() as f64).exp();
        let _ = writeln!(
            out,
            "  geometric mean of the {what} ratios: {geo:.3} ({} rows)",
            logs[kind].len()
        );
    }
}

/// One line of the current / baseline table: the kind of figure (an index into its
/// geometric means), its name, current, baseline, and the lowest and highest per-round ratio.
type BaseRow = (usize, &'static str, f64, f64, (f64, f64));

/// A figure read off a scenario's summary.
type Metric = fn(&Summary) -> f64;

/// One scenario (its title) and its visits per target, with those targets.
type Measured<'a> = (Scenario, String, &'a [Vec<Visit>], &'a [Target]);

/// The load scenarios and the listing ones, each with its targets.
fn measured<'a>(
    targets: &'a [Target],
    scenarios: &[Scenario],
    results: &'a [Vec<Vec<Visit>>],
    extras: &'a Extras,
) -> Vec<Measured<'a>> {
    let mut all: Vec<Measured<'a>> = scenarios
        .iter()
        .copied()
        .zip(results)
        .map(|(s, r)| (s, s.title(), r.as_slice(), targets))
        .collect();
    for run in &extras.lists {
        all.push((
            run.scenario,
            run.title(),
            run.visits.as_slice(),
            run.targets.as_slice(),
        ));
    }
    all
}

/// Every status code and error oha saw that was not a 200.
fn status_report(
    out: &mut String,
    targets: &[Target],
    scenarios: &[Scenario],
    results: &[Vec<Vec<Visit>>],
    extras: &Extras,
) {
    let mut total = 0u64;
    let mut odd = Vec::new();
    for (_, title, visits, targets) in measured(targets, scenarios, results, extras) {
        for (t, vs) in targets.iter().zip(visits) {
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            for v in vs {
                for (k, n) in &v.run.statuses {
                    *statuses.entry(k.clone()).or_default() += n;
                }
                for (k, n) in &v.run.errors {
                    *errors.entry(k.clone()).or_default() += n;
                }
            }
            total += statuses.values().sum::<u64>();
            if statuses.keys().any(|k| k != "200") || !errors.is_empty() {
                odd.push(format!(
                    "  {title} on {}: statuses {statuses:?}, errors {errors:?}",
                    t.name
                ));
            }
        }
    }
    let _ = writeln!(out, "\n══ oha status codes ══");
    if odd.is_empty() {
        let _ = writeln!(
            out,
            "  every one of {total} measured responses was HTTP 200, no errors"
        );
    } else {
        let _ = writeln!(out, "  not all 200 ({total} measured responses):");
        for line in odd {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The gateways' audit lines (one per tool call): their outcomes, counted between scenarios
/// and the log then emptied, so the log of a long run never fills the disk.
struct Audits(BTreeMap<String, BTreeMap<String, u64>>);

impl Audits {
    fn new() -> Audits {
        Audits(BTreeMap::new())
    }

    fn scan(&mut self, gw: &Gateway) {
        let counts = self.0.entry(gw.name.clone()).or_default();
        let Ok(file) = std::fs::File::open(&gw.proc.0.log) else {
            return;
        };
        for line in BufReader::new(file).split(b'\n').map_while(Result::ok) {
            let Some(at) = find(&line, b"manifold::audit") else {
                continue;
            };
            let outcome = find(&line[at..], b"outcome=\"")
                .map(|i| &line[at + i + 9..])
                .and_then(|rest| rest.split(|b| *b == b'"').next())
                .map_or_else(
                    || "?".to_owned(),
                    |o| String::from_utf8_lossy(o).into_owned(),
                );
            *counts.entry(outcome).or_default() += 1;
        }
        // The gateway writes in append mode: after this it goes on at the new end.
        if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&gw.proc.0.log) {
            let _ = file.set_len(0);
        }
    }

    fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n══ gateway audit lines (one per tool call; listings are not audited), by outcome ══"
        );
        for (name, counts) in self.0.iter().filter(|(_, c)| !c.is_empty()) {
            let shown: Vec<String> = counts.iter().map(|(o, n)| format!("{o}: {n}")).collect();
            let _ = writeln!(out, "  {name:<22} {}", shown.join(", "));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The order targets are visited in during `round`: forwards, then backwards, and so on.
fn order(round: usize, n: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
}

/// CPU time of a process in clock ticks, in user space and in the kernel.
#[derive(Clone, Copy, Default)]
struct Ticks {
    user: u64,
    system: u64,
}

impl Ticks {
    fn total(self) -> u64 {
        self.user + self.system
    }
}

/// utime and stime of a process (0 when it is gone).
fn cpu_ticks(pid: u32) -> Ticks {
    stat_fields(pid).map_or(Ticks::default(), |f| {
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // Fields after the command: state is field 3 (index 0), utime 14, stime 15.
        Ticks {
            user: n(11),
            system: n(12),
        }
    })
}

/// The fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The `bench_upstream` processes whose parent is `parent`, with their start times.
fn upstream_children_started(parent: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(fields) = stat_fields(pid) else {
            continue;
        };
        if fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(parent) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if argv0.ends_with(b"bench_upstream") {
            // Field 22, the start time, tells a reused pid apart.
            found.push((pid, fields.get(19).cloned().unwrap_or_default()));
        }
    }
    found
}

fn upstream_children(parent: u32) -> Vec<u32> {
    upstream_children_started(parent)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

fn vm_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// A command's stdout, when it ran and succeeded.
fn run_text(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn git_describe() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A binary's path and the first 12 hex digits of its SHA-256.
fn fingerprint(binary: &Path) -> String {
    let digest = run_text("sha256sum", &[&binary.to_string_lossy()])
        .and_then(|s| s.get(..12).map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    format!("{} (sha256 {digest}…)", binary.display())
}

/// A short-lived child (oha), killed if still running when dropped.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A long-lived child process (`proc::Proc`), and when dropped any `bench_upstream` child it
/// left behind is killed too.
struct Proc(proc::Proc);

impl Proc {
    /// Starts `cmd` with stdout discarded and stderr to `log`.
    fn start(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        Proc(proc::Proc::start(name, cmd, log))
    }

    /// Starts `cmd` (stderr to `log`) and waits for the stdout line starting with `prefix`;
    /// returns the guard and the rest of that line.
    fn spawn(name: &str, cmd: &mut Command, log: &Path, prefix: &str) -> (Proc, String) {
        let (proc, rest) = proc::Proc::spawn(name, cmd, log, prefix);
        (Proc(proc), rest)
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let left = upstream_children_started(self.pid());
        self.0.stop();
        // The gateway stops its stdio upstreams itself; whatever is still there (the same
        // pid, started at the same time) was left behind.
        let deadline = Instant::now() + Duration::from_secs(5);
        for (pid, started) in left {
            let alive =
                || stat_fields(pid).and_then(|f| f.get(19).cloned()) == Some(started.clone());
            while alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if alive() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

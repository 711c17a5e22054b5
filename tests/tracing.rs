//! OpenTelemetry tracing end to end: an OTLP/HTTP receiver inside the test collects what the
//! gateway (and the fixture upstream, which exports too when asked) send, and the tests
//! check the spans of one `tools/call` link up: the client's trace context → the gateway's
//! SERVER span → its CLIENT span → the upstream's own span. Also: trace context reaches a
//! stdio upstream in `_meta`, an untraced gateway leaves messages untouched, and logs in
//! JSON carry no secrets.

mod support;

use std::collections::HashMap;
use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};
use support::*;

/// How long spans may take to arrive (the batch delay is set to 100 ms in these tests).
const SPANS_WAIT: Duration = Duration::from_secs(10);

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    status_code: i32,
}

impl Received {
    fn attr(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("span {} has no attribute {key}: {self:#?}", self.name))
    }
}

/// An OTLP/HTTP (protobuf) receiver on a free loopback port.
struct Collector {
    base: String,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    /// Serves `app` on a free loopback port; `spans` is what its handler fills.
    async fn serve(app: axum::Router, spans: Arc<Mutex<Vec<Received>>>) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            base: format!("http://{addr}"),
            spans,
        }
    }

    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        Self::serve(app, spans).await
    }

    /// The same receiver speaking OTLP/gRPC (HTTP/2 without TLS): the export is one unary
    /// call whose body is a length-prefixed protobuf message.
    async fn start_grpc() -> Collector {
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new()
            .route(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                post(receive_grpc),
            )
            .with_state(spans.clone());
        Self::serve(app, spans).await
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for the spans of trace `trace_id`; returns them.
    async fn wait_for(&self, trace_id: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + SPANS_WAIT;
        loop {
            let spans: Vec<Received> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if done(&spans) {
                return spans;
            }
            if Instant::now() > deadline {
                panic!(
                    "spans of trace {trace_id} incomplete after {SPANS_WAIT:?}: {spans:#?}\nall: {:#?}",
                    self.spans()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive_grpc(
    State(spans): State<Arc<Mutex<Vec<Received>>>>,
    body: Bytes,
) -> ([(&'static str, &'static str); 2], Vec<u8>) {
    // gRPC framing: a compression flag byte, a 4-byte big-endian length, the message.
    assert!(
        body.len() >= 5 && body[0] == 0,
        "an uncompressed gRPC message"
    );
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let _ = receive(State(spans), body.slice(5..5 + len)).await;
    let reply = ExportTraceServiceResponse::default().encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&(reply.len() as u32).to_be_bytes());
    framed.extend_from_slice(&reply);
    (
        [("content-type", "application/grpc"), ("grpc-status", "0")],
        framed,
    )
}

async fn receive(
    State(spans): State<Arc<Mutex<Vec<Received>>>>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let service = attributes(&resource.attributes)
            .remove("service.name")
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(Received {
                    service: service.clone(),
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    status_code: span.status.map(|s| s.code).unwrap_or_default(),
                });
            }
        }
    }
    spans.lock().unwrap().extend(out);
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn attributes(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fixture over HTTP, exporting its spans to `collector`; killed when dropped.
struct TracedFixture {
    child: Child,
    url: String,
}

impl TracedFixture {
    fn start(name: &str, collector: &Collector) -> TracedFixture {
        let mut child = Command::new(fixture_bin())
            .args(["--name", name, "--transport", "http", "--port", "0"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.base)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fixture_server");
        let stdout = child.stdout.take().expect("stdout");
        let line =
            read_line_with_timeout(stdout, "LISTENING ").expect("fixture announces its address");
        TracedFixture {
            child,
            url: line.trim_start_matches("LISTENING ").trim().to_owned(),
        }
    }
}

impl Drop for TracedFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the gateway on `yaml` with extra environment.
fn gateway(yaml: &str, env: &[(&str, &str)]) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, yaml).expect("write config");
    Gateway::start_with(dir, &config, env)
}

fn telemetry_yaml(collector: &Collector) -> String {
    format!(
        "telemetry:\n  otlp:\n    endpoint: {:?}\n    protocol: http\n",
        collector.base
    )
}

/// Sends a `tools/call` with extra HTTP headers; returns the result.
async fn call_with(mcp: &Mcp, params: Value, headers: &[(&str, &str)]) -> Value {
    let mut req = mcp.post();
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call", "params": params});
    let reply = Reply::read(req.json(&body).send().await.expect("POST tools/call")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let response = reply
        .messages()
        .into_iter()
        .find(|m| m.get("id") == Some(&json!(42)))
        .unwrap_or_else(|| panic!("no response in {}", reply.body));
    response
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("tools/call failed: {response}"))
}

fn find(spans: &[Received], pred: impl Fn(&Received) -> bool) -> Option<&Received> {
    spans.iter().find(|s| pred(s))
}

fn is_gateway_server(s: &Received) -> bool {
    s.service == "manifold" && s.kind == SpanKind::Server as i32 && s.name.starts_with("tools/call")
}

fn is_gateway_client(s: &Received) -> bool {
    s.service == "manifold" && s.kind == SpanKind::Client as i32
}

fn is_fixture(s: &Received) -> bool {
    s.service.starts_with("fixture-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_one_trace_from_the_client_through_the_gateway_to_an_http_upstream() {
    init_tls();
    let collector = Collector::start().await;
    let fixture = TracedFixture::start("alpha", &collector);
    let yaml = format!(
        "{}upstreams:\n{}    prefix: \"\"\n",
        telemetry_yaml(&collector),
        http_upstream("alpha", &fixture.url)
    );
    let gw = gateway(&yaml, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let result = call_with(
        &mcp,
        json!({"name": "whoami", "arguments": {}}),
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(first_text(&result), "alpha");

    let spans = collector
        .wait_for(trace_id, |s| {
            find(s, is_gateway_server).is_some()
                && find(s, is_gateway_client).is_some()
                && find(s, is_fixture).is_some()
        })
        .await;
    let server = find(&spans, is_gateway_server).unwrap();
    let client = find(&spans, is_gateway_client).unwrap();
    let upstream = find(&spans, is_fixture).unwrap();

    // SERVER: child of the client's span, named and attributed per the MCP conventions.
    assert_eq!(server.name, "tools/call whoami");
    assert_eq!(server.parent_span_id, client_span);
    assert_eq!(server.attr("mcp.method.name"), "tools/call");
    assert_eq!(server.attr("gen_ai.tool.name"), "whoami");
    assert_eq!(server.attr("gen_ai.operation.name"), "execute_tool");
    assert_eq!(server.attr("jsonrpc.request.id"), "42");
    assert_eq!(server.attr("mcp.protocol.version"), mcp.version);
    assert_eq!(server.attr("network.transport"), "tcp");
    let digest = server.attr("mcp.session.id");
    assert_eq!(digest.len(), 16, "{digest}");
    assert!(
        !mcp.session.contains(digest) && !digest.contains(&mcp.session),
        "the raw session id must not be in spans"
    );
    assert!(
        !server.attributes.values().any(|v| v.contains(&mcp.session)),
        "{server:#?}"
    );
    assert!(!server.attributes.contains_key("error.type"));

    // CLIENT: child of SERVER, about the upstream.
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.name, "tools/call whoami");
    assert_eq!(client.attr("mcp.method.name"), "tools/call");
    assert_eq!(client.attr("gen_ai.tool.name"), "whoami");
    assert_eq!(client.attr("manifold.upstream.name"), "alpha");
    assert_eq!(client.attr("server.address"), "127.0.0.1");
    assert_eq!(client.attr("network.transport"), "tcp");

    // The upstream's own span: child of CLIENT, found through the HTTP header.
    assert_eq!(upstream.service, "fixture-alpha");
    assert_eq!(upstream.kind, SpanKind::Server as i32);
    assert_eq!(upstream.parent_span_id, client.span_id);
    assert_eq!(upstream.attr("fixture.trace_source"), "header");

    // A failing call marks both gateway spans as errors, with the JSON-RPC code.
    let failing_trace = "5bf92f3577b34da6a3ce929d0e0e4736";
    let req = mcp
        .post()
        .header(
            "traceparent",
            format!("00-{failing_trace}-{client_span}-01"),
        )
        .json(&json!({"jsonrpc": "2.0", "id": 43, "method": "tools/call",
                      "params": {"name": "fail", "arguments": {}}}));
    let reply = Reply::read(req.send().await.expect("POST")).await;
    assert!(reply.body.contains("deliberate failure"), "{}", reply.body);
    let spans = collector
        .wait_for(failing_trace, |s| {
            find(s, is_gateway_server).is_some() && find(s, is_gateway_client).is_some()
        })
        .await;
    for span in [
        find(&spans, is_gateway_server).unwrap(),
        find(&spans, is_gateway_client).unwrap(),
    ] {
        assert_eq!(span.attr("error.type"), "-32603", "{span:#?}");
        assert_eq!(span.attr("rpc.jsonrpc.error_code"), "-32603");
        assert_eq!(span.status_code, 2, "status ERROR: {span:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_reaches_a_stdio_upstream_in_meta_and_meta_wins_over_the_header() {
    init_tls();
    let collector = Collector::start().await;
    let tap = Wiretap::new();
    let upstream = format!(
        "{}    prefix: \"\"\n    env:\n      OTEL_EXPORTER_OTLP_ENDPOINT: {:?}\n      OTEL_BSP_SCHEDULE_DELAY: \"100\"\n",
        tap.upstream_yaml("alpha", &fixture_bin(), &["--name", "alpha"]),
        collector.base
    );
    let yaml = format!("{}upstreams:\n{upstream}", telemetry_yaml(&collector));
    let gw = gateway(&yaml, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;

    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let header_trace = "1af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let params = json!({
        "name": "whoami",
        "arguments": {},
        "_meta": {
            "traceparent": format!("00-{meta_trace}-{client_span}-01"),
            "tracestate": "vendor=opaque",
        },
    });
    let header = format!("00-{header_trace}-{client_span}-01");
    call_with(&mcp, params, &[("traceparent", &header)]).await;

    let spans = collector
        .wait_for(meta_trace, |s| {
            find(s, is_gateway_server).is_some()
                && find(s, is_gateway_client).is_some()
                && find(s, is_fixture).is_some()
        })
        .await;
    let server = find(&spans, is_gateway_server).unwrap();
    let client = find(&spans, is_gateway_client).unwrap();
    let upstream = find(&spans, is_fixture).unwrap();
    assert_eq!(server.parent_span_id, client_span);
    assert_eq!(server.attr("network.transport"), "tcp");
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(client.attr("network.transport"), "pipe");
    assert_eq!(upstream.parent_span_id, client.span_id);
    assert_eq!(upstream.attr("fixture.trace_source"), "meta");
    assert!(
        collector.spans().iter().all(|s| s.trace_id != header_trace),
        "_meta.traceparent wins over the header"
    );

    // On the wire: the CLIENT span's context replaced the client's, tracestate kept.
    let sent = tap
        .first_sent("tools/call to reach the upstream", |m| {
            m["method"] == "tools/call"
        })
        .await;
    assert_eq!(
        sent["params"]["_meta"]["traceparent"],
        json!(format!("00-{meta_trace}-{}-01", client.span_id))
    );
    assert_eq!(sent["params"]["_meta"]["tracestate"], "vendor=opaque");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_exporter_upstream_messages_are_untouched_and_logs_are_text() {
    init_tls();
    let tap = Wiretap::new();
    // A handshake-era upstream: a 2026-07-28 one gets the gateway's envelope in `_meta`.
    let yaml = format!(
        "upstreams:\n{}    prefix: \"\"\n    protocol: handshake\n",
        tap.upstream_yaml("alpha", &fixture_bin(), &["--name", "alpha"])
    );
    let gw = gateway(&yaml, &[]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    call_with(
        &mcp,
        json!({"name": "whoami", "arguments": {}}),
        &[("traceparent", header)],
    )
    .await;
    let sent = tap
        .first_sent("tools/call to reach the upstream", |m| {
            m["method"] == "tools/call"
        })
        .await;
    assert_eq!(sent["params"], json!({"name": "whoami", "arguments": {}}));
    let log = gw.log();
    let first = log.lines().next().expect("the gateway logged something");
    assert!(
        serde_json::from_str::<Value>(first).is_err(),
        "text logs by default: {first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_and_carry_no_secrets() {
    init_tls();
    let fixture = HttpFixture::start("alpha", &[]);
    let seal_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let upstream_token = "upstream-token-7c3e9a";
    let client_token = "client-token-51b2f0";
    let yaml = format!(
        "seal_key: \"{seal_key}\"\nupstreams:\n{}    prefix: \"\"\n    headers:\n      Authorization: \"Bearer {upstream_token}\"\n",
        http_upstream("alpha", &fixture.url)
    );
    let mut gw = gateway(
        &yaml,
        &[("MANIFOLD_LOG_FORMAT", "json"), ("MANIFOLD_LOG", "trace")],
    );
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;
    let auth = format!("Bearer {client_token}");
    call_with(
        &mcp,
        json!({"name": "whoami", "arguments": {}}),
        &[("authorization", &auth)],
    )
    .await;
    gw.stop();
    let mut log = String::new();
    std::fs::File::open(gw.dir.path().join("gateway.log"))
        .and_then(|mut f| f.read_to_string(&mut log))
        .expect("read the log");
    assert!(log.lines().count() > 3, "too little logged: {log}");
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    for secret in [seal_key, upstream_token, client_token, &mcp.session] {
        assert!(!log.contains(secret), "{secret} appears in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exports_buffered_spans_before_it_exits() {
    init_tls();
    let collector = Collector::start().await;
    let yaml = format!(
        "{}upstreams:\n{}",
        telemetry_yaml(&collector),
        stdio_fixture("alpha", &[])
    );
    // A batch delay far beyond the test: only the flush at exit can deliver the spans.
    let mut gw = gateway(&yaml, &[("OTEL_BSP_SCHEDULE_DELAY", "600000")]);
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;
    let trace_id = "6bf92f3577b34da6a3ce929d0e0e4736";
    let header = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let tools = mcp.list_keys("tools/list", "tools", "name").await;
    let whoami = tools
        .iter()
        .find(|t| t.ends_with("whoami"))
        .expect("a whoami tool")
        .clone();
    call_with(
        &mcp,
        json!({"name": whoami, "arguments": {}}),
        &[("traceparent", &header)],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        collector.spans().iter().all(|s| s.trace_id != trace_id),
        "nothing is exported before the batch delay"
    );
    let status = gw.stop().expect("the gateway exits");
    assert!(status.success(), "{status:?}\n{}", gw.log());
    let spans = collector
        .wait_for(trace_id, |s| {
            find(s, is_gateway_server).is_some() && find(s, is_gateway_client).is_some()
        })
        .await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_grpc_as_the_otel_variables_ask() {
    init_tls();
    let collector = Collector::start_grpc().await;
    // No telemetry section: the standard variables alone configure the exporter.
    let yaml = format!(
        "upstreams:\n{}    prefix: \"\"\n",
        stdio_fixture("alpha", &[])
    );
    let gw = gateway(
        &yaml,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.base.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "edge-gateway"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    gw.wait_ready().await;
    let mcp = Mcp::connect(&gw.url).await;
    let trace_id = "7bf92f3577b34da6a3ce929d0e0e4736";
    let header = format!("00-{trace_id}-00f067aa0ba902b7-01");
    call_with(
        &mcp,
        json!({"name": "whoami", "arguments": {}}),
        &[("traceparent", &header)],
    )
    .await;
    let spans = collector
        .wait_for(trace_id, |s| {
            s.iter().any(|s| s.kind == SpanKind::Server as i32)
                && s.iter().any(|s| s.kind == SpanKind::Client as i32)
        })
        .await;
    assert!(
        spans.iter().all(|s| s.service == "edge-gateway"),
        "{spans:#?}"
    );
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .unwrap();
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .unwrap();
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(server.name, "tools/call whoami");
}

//! A deliberately small and fast MCP server for load benchmarks (`benches/load.rs`): what a
//! gateway adds can only be seen against an upstream that costs next to nothing itself.
//!
//! ```text
//! bench_upstream [--listen 127.0.0.1:0] [--tools N]     Streamable HTTP on POST /mcp
//! bench_upstream --stdio [--tools N]                    newline-delimited JSON-RPC
//! ```
//!
//! Over HTTP it prints one line, its endpoint URL (`http://127.0.0.1:PORT/mcp`), to stdout
//! once it listens. Every answer is plain `application/json`, never SSE. Both protocol eras:
//!
//! * handshake era (2024-11-05 … 2025-11-25): `initialize` opens a session and answers with a
//!   fresh `Mcp-Session-Id`, negotiating the client's revision when it is one of that era, else
//!   2025-11-25; `notifications/initialized` (any notification or response) gets 202; every
//!   later request must carry a known session id (404 otherwise); DELETE ends the session;
//!   GET gets 405 (there is no server→client stream).
//! * stateless era (2026-07-28): a POST without a session id whose `MCP-Protocol-Version`
//!   header names 2026-07-28. `Mcp-Method` (and `Mcp-Name` for `tools/call`) must match the
//!   body (400 and -32020 otherwise) and `params._meta` must name the revision (-32602);
//!   `server/discover` says which revisions and capabilities there are; results carry
//!   `resultType: "complete"`.
//!
//! On stdio a request whose `_meta` names a revision is answered in the stateless era, any
//! other in the handshake era (no sessions there: the process is the session).
//!
//! Methods: `initialize`, `ping`, `server/discover`, `tools/list` (tools `tool0` …
//! `tool{N-1}`, all in one page), `tools/call` (any listed tool answers "ok" at once);
//! anything else is -32601. Capabilities: `tools` only, without `listChanged`, so a gateway
//! keeps no notification stream open to it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::convert::Infallible;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use http_body::Body as _;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

const STATELESS: &str = "2026-07-28";
const HANDSHAKE: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
const LATEST_HANDSHAKE: &str = "2025-11-25";
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const MAX_BODY: usize = 4 << 20;
const SERVER_INFO: &str = r#"{"name":"bench_upstream","version":"0.1.0"}"#;

fn usage() -> ! {
    eprintln!("usage: bench_upstream [--listen ADDR | --stdio] [--tools N]");
    std::process::exit(2);
}

fn main() {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut tools = 1usize;
    let mut stdio = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--tools" => {
                tools = args
                    .next()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--stdio" => stdio = true,
            _ => usage(),
        }
    }
    let server = Arc::new(Server::new(tools));
    if stdio {
        serve_stdio(&server);
    } else {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(serve_http(server, listen));
    }
}

/// Which era a message is answered in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Era {
    Handshake,
    Stateless,
}

/// The parts of a JSON-RPC message this server reads; everything else is ignored.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize, Default)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "protocolVersion", borrow, default)]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    version: Option<Cow<'a, str>>,
}

impl Message<'_> {
    fn declared_version(&self) -> Option<&str> {
        self.params.as_ref()?.meta.as_ref()?.version.as_deref()
    }

    fn name(&self) -> Option<&str> {
        self.params.as_ref()?.name.as_deref()
    }
}

struct Server {
    tools: usize,
    /// The `tools` array of a `tools/list` result, serialised once.
    tools_json: String,
    sessions: RwLock<HashSet<String>>,
    /// Session ids: this process's random prefix and a counter.
    id_prefix: u64,
    next_id: AtomicU64,
}

impl Server {
    fn new(tools: usize) -> Server {
        let list: Vec<serde_json::Value> = (0..tools)
            .map(|i| {
                serde_json::json!({
                    "name": format!("tool{i}"),
                    "description": format!("Benchmark tool {i}: answers \"ok\" at once."),
                    "inputSchema": {"type": "object", "properties": {}},
                })
            })
            .collect();
        Server {
            tools,
            tools_json: serde_json::to_string(&list).expect("tools serialise"),
            sessions: RwLock::default(),
            id_prefix: rand::random(),
            next_id: AtomicU64::new(1),
        }
    }

    fn open_session(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:016x}{n:016x}", self.id_prefix);
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
        id
    }

    fn knows(&self, id: &str) -> bool {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn close_session(&self, id: &str) -> bool {
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// The answer to a request (`msg.id` is set), as a JSON-RPC response.
    fn answer(&self, msg: &Message<'_>, era: Era) -> String {
        let id = msg.id.map_or("null", RawValue::get);
        let method = msg.method.as_deref().unwrap_or("");
        let complete = if era == Era::Stateless {
            r#","resultType":"complete""#
        } else {
            ""
        };
        match method {
            "tools/call" => {
                if !msg.name().is_some_and(|n| self.is_tool(n)) {
                    return error(id, -32602, "unknown tool");
                }
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[{{"type":"text","text":"ok"}}],"isError":false{complete}}}}}"#
                )
            }
            "tools/list" => format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":{}{complete}}}}}"#,
                self.tools_json
            ),
            "ping" if era == Era::Stateless => {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"resultType":"complete"}}}}"#)
            }
            "ping" => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#),
            "initialize" => {
                let asked = msg
                    .params
                    .as_ref()
                    .and_then(|p| p.protocol_version.as_deref())
                    .unwrap_or(LATEST_HANDSHAKE);
                let version = HANDSHAKE
                    .iter()
                    .find(|v| **v == asked)
                    .unwrap_or(&LATEST_HANDSHAKE);
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":"{version}","capabilities":{{"tools":{{}}}},"serverInfo":{SERVER_INFO}}}}}"#
                )
            }
            "server/discover" => {
                let versions = HANDSHAKE.iter().chain([&STATELESS]);
                let versions: Vec<String> = versions.map(|v| format!("\"{v}\"")).collect();
                format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"supportedVersions":[{}],"capabilities":{{"tools":{{}}}},"_meta":{{"io.modelcontextprotocol/serverInfo":{SERVER_INFO}}}{complete}}}}}"#,
                    versions.join(",")
                )
            }
            _ => error(id, -32601, "method not found"),
        }
    }

    fn is_tool(&self, name: &str) -> bool {
        name.strip_prefix("tool")
            .filter(|n| !n.starts_with('+'))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|i| i < self.tools)
    }
}

fn error(id: &str, code: i32, message: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#)
}

/// Newline-delimited JSON-RPC on stdin and stdout, until stdin closes. Answers are flushed
/// when no further input is already buffered, so a burst of requests costs one write.
fn serve_stdio(server: &Server) {
    // Larger than stdin's own buffer, so reads bypass it and `buffer()` sees all that waits.
    let mut input = std::io::BufReader::with_capacity(64 << 10, std::io::stdin().lock());
    let mut output = std::io::BufWriter::new(std::io::stdout().lock());
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Message<'_>>(text) {
            Ok(msg) if msg.id.is_some() && msg.method.is_some() => {
                let era = if msg.declared_version().is_some() {
                    Era::Stateless
                } else {
                    Era::Handshake
                };
                Some(server.answer(&msg, era))
            }
            // Notifications and responses need no answer.
            Ok(_) => None,
            Err(_) => Some(error("null", -32700, "parse error")),
        };
        if let Some(reply) = reply {
            let written = output
                .write_all(reply.as_bytes())
                .and_then(|()| output.write_all(b"\n"));
            if written.is_err() {
                break;
            }
        }
        if input.buffer().is_empty() && output.flush().is_err() {
            break;
        }
    }
    let _ = output.flush();
}

async fn serve_http(server: Arc<Server>, addr: SocketAddr) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let local = listener.local_addr().expect("local address");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{local}/mcp");
        let _ = out.flush();
    }
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(&server, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json(status: StatusCode, body: String) -> Response<String> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn empty(status: StatusCode) -> Response<String> {
    let mut resp = Response::new(String::new());
    *resp.status_mut() = status;
    resp
}

fn header<'r>(headers: &'r HeaderMap, name: &str) -> Option<&'r str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(server: &Server, req: Request<Incoming>) -> Response<String> {
    if req.uri().path() != "/mcp" {
        return empty(StatusCode::NOT_FOUND);
    }
    match *req.method() {
        Method::POST => post(server, req).await,
        Method::DELETE => match header(req.headers(), SESSION_HEADER) {
            Some(id) if server.close_session(id) => empty(StatusCode::OK),
            Some(_) => empty(StatusCode::NOT_FOUND),
            None => empty(StatusCode::BAD_REQUEST),
        },
        _ => {
            let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST, DELETE"));
            resp
        }
    }
}

async fn read_body(body: Incoming) -> Option<Vec<u8>> {
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Ok(data) = frame.ok()?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > MAX_BODY {
                return None;
            }
        }
    }
    Some(buf)
}

async fn post(server: &Server, req: Request<Incoming>) -> Response<String> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let Some(body) = read_body(body).await else {
        return json(
            StatusCode::PAYLOAD_TOO_LARGE,
            error("null", -32600, "body too large"),
        );
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return json(
            StatusCode::BAD_REQUEST,
            error("null", -32600, "batches are not supported"),
        );
    }
    let msg = match serde_json::from_slice::<Message<'_>>(&body) {
        Ok(msg) => msg,
        Err(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                error("null", -32700, "parse error"),
            );
        }
    };
    let id = msg.id.map_or("null", RawValue::get);
    let Some(method) = msg.method.as_deref().filter(|_| msg.id.is_some()) else {
        // A notification (`notifications/initialized`) or a response: accepted.
        return empty(StatusCode::ACCEPTED);
    };

    if let Some(session) = header(headers, SESSION_HEADER) {
        if !server.knows(session) {
            return json(StatusCode::NOT_FOUND, error(id, -32001, "unknown session"));
        }
        return json(StatusCode::OK, server.answer(&msg, Era::Handshake));
    }
    if method == "initialize" {
        let session = server.open_session();
        let mut resp = json(StatusCode::OK, server.answer(&msg, Era::Handshake));
        if let Ok(value) = HeaderValue::from_str(&session) {
            resp.headers_mut().insert(SESSION_HEADER, value);
        }
        return resp;
    }
    match header(headers, VERSION_HEADER) {
        Some(STATELESS) => {}
        Some(_) | None => {
            return json(
                StatusCode::BAD_REQUEST,
                error(
                    id,
                    -32600,
                    "no Mcp-Session-Id and no MCP-Protocol-Version: 2026-07-28",
                ),
            );
        }
    }
    // 2026-07-28: the headers must mirror the body.
    if msg.declared_version() != Some(STATELESS) {
        return json(
            StatusCode::BAD_REQUEST,
            error(
                id,
                -32602,
                "params._meta must name protocolVersion 2026-07-28",
            ),
        );
    }
    if header(headers, "mcp-method") != Some(method) {
        return json(
            StatusCode::BAD_REQUEST,
            error(id, -32020, "Mcp-Method does not match the body"),
        );
    }
    if method == "tools/call" && header(headers, "mcp-name") != msg.name() {
        return json(
            StatusCode::BAD_REQUEST,
            error(id, -32020, "Mcp-Name does not match the body"),
        );
    }
    json(StatusCode::OK, server.answer(&msg, Era::Stateless))
}

//! A small raw MCP client over Streamable HTTP (reqwest): it shows exactly what is on the
//! wire, JSON or SSE, so tests can compare results byte for byte and look at status codes,
//! headers and the order of events. Every wait is bounded by [`WAIT`] or an explicit limit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::{Value, json};

use super::{WAIT, init_tls};

/// What every MCP POST must accept.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The revision tests negotiate unless they say otherwise.
pub const VERSION: &str = "2025-11-25";

/// A reqwest client for loopback tests: no proxy, every request bounded by [`WAIT`].
pub fn http_client() -> reqwest::Client {
    init_tls();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("reqwest client")
}

/// A reqwest client without an overall timeout, for long-lived SSE streams (reads are
/// bounded by the caller instead).
pub fn streaming_client() -> reqwest::Client {
    init_tls();
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(WAIT)
        .build()
        .expect("reqwest client")
}

/// Runs `f` at most `limit`; panics naming `what` if it does not finish in time.
pub async fn within<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?}: {what}"))
}

/// Polls `f` every 100 ms until it yields `Some`, at most `limit`; panics naming `what`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `data` of each SSE event in `text`, events without data (priming, comments) skipped.
pub fn sse_data(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let text = text.replace("\r\n", "\n");
    for block in text.split("\n\n") {
        if let Some(data) = event_data(block) {
            out.push(data);
        }
    }
    out
}

fn event_data(block: &str) -> Option<String> {
    let lines: Vec<&str> = block
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    let data = lines.join("\n");
    (!data.trim().is_empty()).then_some(data)
}

/// The JSON-RPC messages in a response body: one JSON document, or SSE events.
pub fn messages_of(content_type: &str, body: &str) -> Vec<Value> {
    if content_type.starts_with("text/event-stream") {
        sse_data(body)
            .iter()
            .map(|d| {
                serde_json::from_str(d)
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {d}"))
            })
            .collect()
    } else if body.trim().is_empty() {
        Vec::new()
    } else {
        vec![
            serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}")),
        ]
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.expect("response body");
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The JSON-RPC messages carried by the body.
    pub fn messages(&self) -> Vec<Value> {
        messages_of(self.content_type(), &self.body)
    }

    /// The body as one JSON document; for an SSE answer, the JSON-RPC response it ends with.
    pub fn json(&self) -> Value {
        if self.content_type().starts_with("text/event-stream") {
            return self
                .messages()
                .into_iter()
                .rfind(|m| m.get("id").is_some() && m.get("method").is_none())
                .unwrap_or_else(|| panic!("no response in the stream: {}", self.body));
        }
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One initialized MCP session, spoken to with raw HTTP.
pub struct Mcp {
    pub http: reqwest::Client,
    pub url: String,
    pub session: String,
    pub version: String,
    /// The `initialize` result.
    pub init: Value,
    next_id: AtomicU64,
}

impl Mcp {
    /// Initializes a session on `url` (2025-11-25) and sends `notifications/initialized`.
    pub async fn connect(url: &str) -> Mcp {
        Self::connect_version(url, VERSION).await
    }

    pub async fn connect_version(url: &str, version: &str) -> Mcp {
        Self::connect_with(url, version, json!({})).await
    }

    /// Initializes a session declaring the client `capabilities` (`{"sampling": {}}`, say).
    pub async fn connect_with(url: &str, version: &str, capabilities: Value) -> Mcp {
        Self::connect_using(http_client(), url, version, capabilities).await
    }

    /// Initializes a session with a given client (one with default headers carrying
    /// credentials, say); every later request of the session goes through it.
    pub async fn connect_using(
        http: reqwest::Client,
        url: &str,
        version: &str,
        capabilities: Value,
    ) -> Mcp {
        let reply = post_initialize(&http, url, 1, version, capabilities)
            .await
            .expect("POST initialize");
        assert_eq!(reply.status, 200, "initialize failed: {}", reply.body);
        let session = reply
            .header("mcp-session-id")
            .expect("Mcp-Session-Id header")
            .to_owned();
        let msg = reply
            .messages()
            .into_iter()
            .find(|m| m.get("id").is_some())
            .expect("initialize response");
        let result = msg
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("initialize error: {msg}"));
        let negotiated = result["protocolVersion"]
            .as_str()
            .expect("protocolVersion")
            .to_owned();
        let mcp = Mcp {
            http,
            url: url.to_owned(),
            session,
            version: negotiated,
            init: result,
            next_id: AtomicU64::new(2),
        };
        let reply = mcp
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert!(
            reply.status == 202 || reply.status == 200,
            "initialized: {} {}",
            reply.status,
            reply.body
        );
        mcp
    }

    /// A second handle on the same session (for a request running beside others).
    pub fn same_session(&self) -> Mcp {
        Mcp {
            http: self.http.clone(),
            url: self.url.clone(),
            session: self.session.clone(),
            version: self.version.clone(),
            init: self.init.clone(),
            next_id: AtomicU64::new(self.next_id.fetch_add(1000, Ordering::Relaxed) + 1000),
        }
    }

    /// A POST to the endpoint carrying this session's headers.
    pub fn post(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", &self.version)
    }

    /// Sends one message and reads the whole answer.
    pub async fn send(&self, msg: &Value) -> Reply {
        let resp = self.post().json(msg).send().await.expect("POST");
        Reply::read(resp).await
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request; returns every message of the answer (notifications, then the response).
    pub async fn exchange(&self, method: &str, params: Value) -> (Vec<Value>, Value) {
        let id = self.next_id();
        let reply = self
            .send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(
            reply.status, 200,
            "{method}: HTTP {} {}",
            reply.status, reply.body
        );
        let mut msgs = reply.messages();
        let pos = msgs
            .iter()
            .position(|m| {
                m.get("id") == Some(&json!(id))
                    && (m.get("result").is_some() || m.get("error").is_some())
            })
            .unwrap_or_else(|| panic!("{method}: no response with id {id} in {msgs:?}"));
        let response = msgs.remove(pos);
        (msgs, response)
    }

    /// Sends a request: `Ok(result)` or `Err(error object)`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, Value> {
        let (_, response) = self.exchange(method, params).await;
        match response.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(response["error"].clone()),
        }
    }

    /// A request that must succeed.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        self.request(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// A request that must fail; returns the error object.
    pub async fn err(&self, method: &str, params: Value) -> Value {
        match self.request(method, params).await {
            Ok(r) => panic!("{method} should have failed, got {r}"),
            Err(e) => e,
        }
    }

    /// `tools/call`, returning the result (which may be a tool error result).
    pub async fn call(&self, tool: &str, args: Value) -> Result<Value, Value> {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }

    /// `tools/call` that must succeed; returns the first text block.
    pub async fn call_text(&self, tool: &str, args: Value) -> String {
        let result = self
            .call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{tool} failed: {e}"));
        assert_ne!(
            result["isError"],
            json!(true),
            "{tool} returned a tool error: {result}"
        );
        first_text(&result)
    }

    /// Follows `nextCursor` to the end of a listing; returns every item in order.
    pub async fn list_all(&self, method: &str, field: &str) -> Vec<Value> {
        self.try_list_all(method, field)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Like [`Mcp::list_all`], but a failed page (a cursor gone stale because the listing
    /// changed during the walk, say) is returned as the error instead of panicking.
    pub async fn try_list_all(&self, method: &str, field: &str) -> Result<Vec<Value>, Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self.request(method, params).await?;
            items.extend(
                page[field]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method}: no {field} in {page}"))
                    .iter()
                    .cloned(),
            );
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
        panic!("{method}: more than 1000 pages");
    }

    /// Names (or URIs) of every listed item: `key` is `name`, `uri` or `uriTemplate`.
    pub async fn list_keys(&self, method: &str, field: &str, key: &str) -> Vec<String> {
        self.list_all(method, field)
            .await
            .iter()
            .map(|i| i[key].as_str().expect("key").to_owned())
            .collect()
    }

    /// Opens the session's GET stream; `Err(status)` if refused.
    pub async fn open_stream(&self) -> Result<SseStream, u16> {
        let resp = streaming_client()
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", &self.version)
            .send()
            .await
            .expect("GET stream");
        if resp.status().as_u16() != 200 {
            return Err(resp.status().as_u16());
        }
        Ok(SseStream::new(resp))
    }

    /// Sends a request whose answer is read as it arrives (for SSE answers).
    pub async fn stream_request(&self, method: &str, params: Value) -> (u64, reqwest::Response) {
        let id = self.next_id();
        let resp = streaming_client()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", &self.version)
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
            .await
            .expect("POST");
        (id, resp)
    }
}

/// The body of an `initialize` request.
/// The `Content-Type` of an answer ("" when absent).
pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// SHA-256 of `text` in lower-case hex: what `auth.api_keys[].sha256` holds for a key.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POSTs `initialize` (request `id`, `version`, `capabilities`) through `http` and reads the
/// answer, whatever its status.
pub async fn post_initialize(
    http: &reqwest::Client,
    url: &str,
    id: u64,
    version: &str,
    capabilities: Value,
) -> Result<Reply, reqwest::Error> {
    let mut init = initialize_body(id, version);
    init["params"]["capabilities"] = capabilities;
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .json(&init)
        .send()
        .await?;
    Ok(Reply::read(resp).await)
}

pub fn initialize_body(id: u64, version: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "manifold-tests", "version": "0"},
        },
    })
}

/// The first text content block of a tool, prompt or resource result.
pub fn first_text(result: &Value) -> String {
    let text = result["content"][0]["text"]
        .as_str()
        .or_else(|| result["contents"][0]["text"].as_str())
        .or_else(|| result["messages"][0]["content"]["text"].as_str());
    text.unwrap_or_else(|| panic!("no text in {result}"))
        .to_owned()
}

/// An SSE response read event by event.
pub struct SseStream {
    bytes: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
    ended: bool,
}

impl SseStream {
    pub fn new(resp: reqwest::Response) -> SseStream {
        SseStream {
            bytes: resp.bytes_stream().boxed(),
            buf: String::new(),
            ended: false,
        }
    }

    /// The next JSON-RPC message, `None` when the stream ended or `limit` passed.
    pub async fn next(&mut self, limit: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.buf = self.buf.replace("\r\n", "\n");
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(data) = event_data(&block) {
                    return Some(
                        serde_json::from_str(&data)
                            .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {data}")),
                    );
                }
                continue;
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

    /// Waits (at most `limit`) for a message that satisfies `pred`, skipping others.
    pub async fn next_matching(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.next(left).await?;
            if pred(&msg) {
                return Some(msg);
            }
        }
    }
}

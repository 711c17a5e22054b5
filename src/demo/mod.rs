//! The built-in demo MCP server, served by `manifold demo`.
//!
//! The default gateway configuration points at this server over stdio, so a
//! fresh machine without network access can still try the gateway end to end.
//! It is deliberately small but complete: a handful of tools (with output
//! schemas and annotations), static and templated resources, prompts with
//! arguments, and argument completion.
//!
//! It speaks both eras, the way the Python SDK's dual-era stdio loop does: the
//! first JSON-RPC request locks the connection's era. It is the 2026-07-28 era
//! (see [`stateless`]) iff that request is not `initialize` and its `params._meta`
//! names `io.modelcontextprotocol/protocolVersion`; otherwise the handshake era
//! (2024-11-05 … 2025-11-25, `initialize` first). Afterwards an `initialize` on
//! a stateless connection is -32022, and a request with the stateless envelope on a
//! handshake-era connection is -32600.
//!
//! The server is hand-written on top of `serde_json` rather than an MCP SDK so
//! that the gateway binary does not carry one. The protocol logic lives in the
//! pure [`handle`] function (one parsed message in, at most one message out: a
//! reply, or in two cases something else, see [`handle`]); [`run_stdio`] only
//! adds newline-delimited framing on stdin/stdout, and writes what
//! [`end_of_input`] returns when stdin closes.

mod catalog;
mod confirm;
mod stateless;
mod tools;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::protocol::envelope;
use crate::protocol::{Era, ErrorObject};

pub use stateless::CATALOG_TTL_MS;

/// Handshake-era protocol revisions this server speaks, oldest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

/// Stateless-era protocol revisions this server speaks, oldest first.
pub const STATELESS_PROTOCOL_VERSIONS: [&str; 1] = ["2026-07-28"];

/// Every revision this server speaks, both eras, oldest first.
pub fn all_protocol_versions() -> Vec<&'static str> {
    SUPPORTED_PROTOCOL_VERSIONS
        .iter()
        .chain(STATELESS_PROTOCOL_VERSIONS.iter())
        .copied()
        .collect()
}

/// The revision offered when the client asks for one we do not know.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// The `serverInfo.name` this server reports.
pub const SERVER_NAME: &str = "manifold-demo";

const INSTRUCTIONS: &str = "A small demo server bundled with Manifold. Try the `add`, `echo`, \
`word_count` and `now` tools (and `confirm`, which asks the user, when the client can answer \
elicitation requests), read `demo://readme` or any `demo://notes/{topic}` resource, and fetch \
the `summarize` or `greet` prompts.";

// JSON-RPC 2.0 and MCP error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const RESOURCE_NOT_FOUND: i64 = -32002;
const MISSING_CLIENT_CAPABILITY: i64 = -32021;
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

const TOOLS_CALL: &str = "tools/call";

/// Per-connection state.
///
/// One stdio process serves exactly one client. In the handshake era this
/// tracks the session (the agreed revision, the client's capabilities, and
/// `confirm` calls waiting for the client's answer); in the stateless era, which
/// keeps no session, only the open `subscriptions/listen` streams. The key that
/// seals MRTR `requestState`s lives here too: one per process.
#[derive(Debug, Clone)]
pub struct DemoState {
    /// Which era the connection speaks; fixed by its first request (`None` before it).
    era: Option<Era>,
    protocol_version: Option<String>,
    client_capabilities: Value,
    pending: Vec<confirm::Pending>,
    next_request_id: u64,
    listens: Vec<Value>,
    state_key: confirm::StateKey,
}

impl Default for DemoState {
    fn default() -> Self {
        Self {
            era: None,
            protocol_version: None,
            client_capabilities: json!({}),
            pending: Vec::new(),
            next_request_id: 0,
            listens: Vec::new(),
            state_key: confirm::StateKey::from_env_or_random(),
        }
    }
}

impl DemoState {
    /// A connection that has not seen a request yet.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A JSON-RPC error produced by a method handler.
#[derive(Debug, Clone, PartialEq)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl From<ErrorObject> for RpcError {
    fn from(err: ErrorObject) -> Self {
        Self {
            code: i64::from(err.code),
            message: err.message,
            data: err.data,
        }
    }
}

type MethodResult = Result<Value, RpcError>;

/// Serves the demo MCP server on stdin/stdout until stdin closes.
///
/// Framing is one JSON-RPC message per line. Only protocol messages are
/// written to stdout; anything diagnostic goes through `tracing`, which the
/// caller must route to stderr. Returns `Ok(())` at end of input and an error
/// only if stdin or stdout fails.
pub async fn run_stdio() -> std::io::Result<()> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut output = tokio::io::stdout();
    let mut state = DemoState::new();
    // Read raw bytes rather than `lines()`: invalid UTF-8 must become a
    // JSON-RPC parse error for that line, not a fatal I/O error.
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).await? == 0 {
            tracing::debug!("demo server: stdin closed");
            // The client may still read stdout while it waits for us to exit;
            // if it does not, there is nobody left to tell about a failure.
            for msg in end_of_input(&mut state) {
                if write_line(&mut output, &msg).await.is_err() {
                    break;
                }
            }
            return Ok(());
        }
        if let Some(msg) = handle_line(&mut state, &line) {
            write_line(&mut output, &msg).await?;
        }
    }
}

async fn write_line(output: &mut tokio::io::Stdout, msg: &Value) -> std::io::Result<()> {
    // `Value`'s compact form escapes control characters, so the message is
    // guaranteed to be a single line.
    let mut bytes = msg.to_string().into_bytes();
    bytes.push(b'\n');
    output.write_all(&bytes).await?;
    output.flush().await
}

/// What the server sends when its input ends: each `subscriptions/listen`
/// still open is torn down gracefully, with its result (`resultType:
/// "complete"` and the subscription id in `_meta`).
pub fn end_of_input(state: &mut DemoState) -> Vec<Value> {
    state
        .listens
        .drain(..)
        .map(stateless::listen_closed)
        .collect()
}

/// Handles one raw line of input: parses it and passes it to [`handle`].
///
/// Blank lines are ignored; bytes that are not a JSON document yield a
/// `-32700` parse error with a `null` id, since the id cannot be known.
pub fn handle_line(state: &mut DemoState, line: &[u8]) -> Option<Value> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(msg) => handle(state, msg),
        Err(err) => {
            tracing::debug!(%err, "demo server: unparsable input line");
            Some(error_response(
                Value::Null,
                &RpcError::new(PARSE_ERROR, format!("Parse error: {err}")),
            ))
        }
    }
}

/// Handles one parsed JSON-RPC message and returns the message to send, if any.
///
/// That is the reply to a request, except in two cases: a stateless
/// `subscriptions/listen` is answered by its acknowledgement (the result comes
/// only when the stream ends), and a handshake-era `confirm` tool call by an
/// `elicitation/create` request to the client; the client's response to that
/// request then yields the tool call's reply, and cancelling the call yields a
/// `notifications/cancelled` for the request. Other notifications and
/// responses get nothing. The function does no I/O, which keeps the whole
/// protocol unit-testable.
pub fn handle(state: &mut DemoState, msg: Value) -> Option<Value> {
    let Value::Object(obj) = msg else {
        // Batches (arrays) were dropped from MCP in 2025-06-18; treat them,
        // like any other non-object, as an invalid request.
        return Some(error_response(
            Value::Null,
            &RpcError::new(INVALID_REQUEST, "Invalid Request: expected a JSON object"),
        ));
    };
    // A request id must be a string or a number; anything else cannot be
    // echoed back meaningfully, so such errors go out with a null id.
    let reply_id = match obj.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        if obj.contains_key("result") || obj.contains_key("error") {
            // A response from the client: only handshake-era `confirm` calls
            // send requests, so only those responses mean anything.
            let reply = match state.era {
                Some(Era::Handshake) => confirm::answer_handshake(state, &obj),
                _ => None,
            };
            if reply.is_none() {
                tracing::debug!("demo server: ignoring unsolicited response");
            }
            return reply;
        }
        return Some(error_response(
            reply_id,
            &RpcError::new(INVALID_REQUEST, "Invalid Request: missing method"),
        ));
    };
    if !obj.contains_key("id") {
        // Notifications never get a reply, not even an error.
        return handle_notification(state, method, obj.get("params"));
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error_response(
            reply_id,
            &RpcError::new(INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\""),
        ));
    }
    if reply_id.is_null() {
        return Some(error_response(
            Value::Null,
            &RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: id must be a string or a number",
            ),
        ));
    }
    let id = reply_id;
    let raw_params = obj.get("params");
    let enveloped = method != "initialize" && envelope::declares_version(raw_params);
    let era = *state.era.get_or_insert(if enveloped {
        Era::Stateless
    } else {
        Era::Handshake
    });
    let params = match raw_params {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params.clone(),
        Some(_) => {
            return Some(error_response(
                id,
                &RpcError::invalid_params("params must be an object"),
            ));
        }
    };
    if era == Era::Stateless {
        return Some(stateless::request(state, id, method, raw_params, &params));
    }
    if enveloped {
        return Some(error_response(
            id,
            &RpcError::new(
                INVALID_REQUEST,
                "Invalid Request: this connection speaks a handshake-era revision (its first \
                 request had no protocol version in `_meta`), so 2026-07-28 requests are refused",
            ),
        ));
    }
    if method == TOOLS_CALL && state.protocol_version.is_some() && confirm::is_confirm(&params) {
        return Some(confirm::start_handshake(state, id, &params));
    }
    Some(match dispatch(state, method, &params) {
        Ok(result) => response(id, result),
        Err(err) => error_response(id, &err),
    })
}

fn handle_notification(
    state: &mut DemoState,
    method: &str,
    params: Option<&Value>,
) -> Option<Value> {
    match method {
        "notifications/initialized" if state.protocol_version.is_none() => {
            tracing::debug!("demo server: `initialized` before `initialize`");
        }
        "notifications/cancelled" => {
            // Every request but a listen (stateless) or a `confirm` waiting for
            // the client's answer (handshake era) is answered before the next
            // line is read, so those are all there is to cancel.
            let request_id = params.and_then(|p| p.get("requestId"))?;
            match state.era {
                Some(Era::Stateless) => stateless::cancel(state, request_id),
                Some(Era::Handshake) => return confirm::cancel_handshake(state, request_id),
                None => {}
            }
        }
        "notifications/initialized" => {}
        other => tracing::debug!(method = other, "demo server: ignoring notification"),
    }
    None
}

fn dispatch(state: &mut DemoState, method: &str, params: &Map<String, Value>) -> MethodResult {
    match method {
        "initialize" => return initialize(state, params),
        "ping" => return Ok(json!({})),
        _ => {}
    }
    if state.protocol_version.is_none() {
        return Err(RpcError::invalid_params("not initialized"));
    }
    match method {
        "tools/list" => single_page(params, "tools", handshake_tools(state)),
        "tools/call" => tools::call(params),
        "resources/list" => single_page(params, "resources", catalog::resources()),
        "resources/templates/list" => {
            single_page(params, "resourceTemplates", catalog::resource_templates())
        }
        "resources/read" => catalog::read_resource(params),
        "prompts/list" => single_page(params, "prompts", catalog::prompts()),
        "prompts/get" => catalog::get_prompt(params),
        "completion/complete" => catalog::complete(params),
        _ => Err(method_not_found(method)),
    }
}

fn method_not_found(method: &str) -> RpcError {
    RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
        .with_data(json!({ "method": method }))
}

/// The tools a handshake-era session sees: `confirm` only when the session
/// can answer the elicitation request it sends.
fn handshake_tools(state: &DemoState) -> Vec<Value> {
    let can_elicit = confirm::handshake_session_can_elicit(state);
    tools::list()
        .into_iter()
        .filter(|tool| can_elicit || tool["name"] != confirm::NAME)
        .collect()
}

fn initialize(state: &mut DemoState, params: &Map<String, Value>) -> MethodResult {
    if state.protocol_version.is_some() {
        return Err(RpcError::new(INVALID_REQUEST, "already initialized"));
    }
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params("initialize: protocolVersion must be a string"))?;
    let version = negotiate_version(requested);
    state.protocol_version = Some(version.to_owned());
    state.client_capabilities = match params.get("capabilities") {
        Some(caps @ Value::Object(_)) => caps.clone(),
        _ => json!({}),
    };
    Ok(json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "subscribe": false, "listChanged": false },
            "prompts": { "listChanged": false },
            "completions": {},
        },
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    }))
}

/// This server as an MCP implementation: `serverInfo` in `initialize`, and
/// `_meta["io.modelcontextprotocol/serverInfo"]` on stateless results.
fn server_info() -> Value {
    json!({
        "name": SERVER_NAME,
        "title": "Manifold demo server",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// Echoes the client's protocol revision when supported, otherwise offers
/// the newest one we know (the client then decides whether to continue).
pub fn negotiate_version(requested: &str) -> &'static str {
    SUPPORTED_PROTOCOL_VERSIONS
        .iter()
        .find(|&&v| v == requested)
        .copied()
        .unwrap_or(LATEST_PROTOCOL_VERSION)
}

/// Wraps a complete list in a list result. Every list here fits in one page,
/// so this server never hands out cursors and any cursor a client sends is
/// necessarily invalid.
fn single_page(params: &Map<String, Value>, key: &str, items: Vec<Value>) -> MethodResult {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(json!({ key: items })),
        Some(_) => Err(RpcError::invalid_params("invalid cursor")),
    }
}

fn response(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn error_response(id: Value, err: &RpcError) -> Value {
    let mut error = json!({ "code": err.code, "message": err.message });
    if let (Some(data), Value::Object(error)) = (&err.data, &mut error) {
        error.insert("data".to_owned(), data.clone());
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

/// Reads a required string field from request params.
fn required_str<'a>(params: &'a Map<String, Value>, field: &str) -> Result<&'a str, RpcError> {
    params
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("`{field}` must be a string")))
}

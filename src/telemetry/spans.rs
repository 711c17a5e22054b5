//! The spans of the OpenTelemetry semantic conventions for MCP, and W3C trace-context
//! propagation (the `traceparent` / `tracestate` HTTP headers and the same keys in a
//! request's `params._meta`, as MCP SEP-414 reserves them).
//!
//! Everything here is cheap when the span is disabled (no exporter and a log filter that
//! does not ask for DEBUG spans of [`super::TARGET`]): attributes are computed only for an
//! enabled span, and nothing is injected into an upstream message unless the span belongs
//! to a sampled OpenTelemetry trace.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{TransportConfig, UpstreamConfig};
use crate::protocol::{ErrorObject, Payload, Request, field, methods};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// What one span is about: the method and its low-cardinality target.
struct Subject<'a> {
    method: &'a str,
    tool: Option<&'a str>,
    prompt: Option<&'a str>,
    uri: Option<&'a str>,
}

impl<'a> Subject<'a> {
    fn of(method: &'a str, params: Option<&'a Value>) -> Self {
        let field = |key: &str| params.and_then(|p| p.get(key)).and_then(Value::as_str);
        Subject {
            method,
            tool: (method == methods::TOOLS_CALL)
                .then(|| field("name"))
                .flatten(),
            prompt: (method == methods::PROMPTS_GET)
                .then(|| field("name"))
                .flatten(),
            uri: field("uri"),
        }
    }

    /// `{mcp.method.name} {target}`; the target is a tool or prompt name, never a resource
    /// URI (unbounded cardinality), as the conventions recommend.
    fn span_name(&self) -> String {
        match self.tool.or(self.prompt) {
            Some(target) => format!("{} {target}", self.method),
            None => self.method.to_owned(),
        }
    }

    fn record(&self, span: &Span) {
        span.record("otel.name", self.span_name());
        span.record("mcp.method.name", self.method);
        if let Some(tool) = self.tool {
            span.record("gen_ai.tool.name", tool);
            span.record("gen_ai.operation.name", "execute_tool");
        }
        if let Some(prompt) = self.prompt {
            span.record("gen_ai.prompt.name", prompt);
        }
        if let Some(uri) = self.uri {
            span.record("mcp.resource.uri", uri);
        }
    }
}

/// The SERVER span of one client request. The parent is the client's trace context:
/// `params._meta.traceparent` when present, else the `traceparent` HTTP header.
pub fn server_span(req: &Request, transport: &str, header: Option<(&str, Option<&str>)>) -> Span {
    let span = tracing::debug_span!(
        target: super::TARGET,
        "mcp.request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        mcp.method.name = Empty,
        jsonrpc.request.id = Empty,
        mcp.session.id = Empty,
        mcp.protocol.version = Empty,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        gen_ai.prompt.name = Empty,
        mcp.resource.uri = Empty,
        network.transport = Empty,
        network.protocol.name = Empty,
        error.type = Empty,
        rpc.response.status_code = Empty,
        rpc.jsonrpc.error_code = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    Subject::of(&req.method, req.params_except_arguments()).record(&span);
    span.record("jsonrpc.request.id", id_text(&req.id));
    let (network, protocol) = match transport {
        "stdio" => ("pipe", None),
        _ => ("tcp", Some("http")),
    };
    span.record("network.transport", network);
    if let Some(protocol) = protocol {
        span.record("network.protocol.name", protocol);
    }
    let from_meta = req
        .params_except_arguments()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(TRACEPARENT))
        .and_then(Value::as_str)
        .map(|tp| {
            let ts = req
                .params_except_arguments()
                .and_then(|p| p.pointer("/_meta/tracestate"))
                .and_then(Value::as_str);
            (tp, ts)
        });
    if let Some(parent) = from_meta
        .and_then(remote_context)
        .or_else(|| header.and_then(remote_context))
    {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records the session once it is known (after `initialize`, it is).
pub fn record_session(span: &Span, session_id: &str, protocol_version: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("mcp.session.id", session_digest(session_id));
    span.record("mcp.protocol.version", protocol_version);
}

/// Records how a request ended: a JSON-RPC error, or a tool result flagged `isError`.
pub fn record_outcome(span: &Span, outcome: &Result<Payload, ErrorObject>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Err(e) => {
            let code = e.code.to_string();
            span.record("error.type", code.as_str());
            span.record("rpc.response.status_code", code.as_str());
            span.record("rpc.jsonrpc.error_code", i64::from(e.code));
            span.record("otel.status_code", "error");
        }
        Ok(result) if result.is_error() => {
            span.record("error.type", "tool_error");
            span.record("otel.status_code", "error");
        }
        Ok(_) => {}
    }
}

/// The CLIENT span of one request the gateway sends to an upstream, child of the current
/// span (the SERVER span of the client request it serves, when there is one).
pub fn client_span(upstream: &UpstreamConfig, method: &str, params: Option<&Value>) -> Span {
    let span = tracing::debug_span!(
        target: super::TARGET,
        "mcp.upstream",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        mcp.method.name = Empty,
        manifold.upstream.name = %upstream.name,
        gen_ai.operation.name = Empty,
        gen_ai.tool.name = Empty,
        gen_ai.prompt.name = Empty,
        mcp.resource.uri = Empty,
        network.transport = Empty,
        network.protocol.name = Empty,
        server.address = Empty,
        server.port = Empty,
        error.type = Empty,
        rpc.response.status_code = Empty,
        rpc.jsonrpc.error_code = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    Subject::of(method, params).record(&span);
    match &upstream.transport {
        TransportConfig::Stdio { .. } => {
            span.record("network.transport", "pipe");
        }
        TransportConfig::StreamableHttp { url, .. } | TransportConfig::Sse { url, .. } => {
            span.record("network.transport", "tcp");
            span.record("network.protocol.name", "http");
            if let Some(host) = url.host_str() {
                span.record("server.address", host);
            }
            if let Some(port) = url.port_or_known_default() {
                span.record("server.port", i64::from(port));
            }
        }
    }
    span
}

/// Writes `span`'s trace context into `params._meta` (`traceparent`, and `tracestate` when
/// there is one), replacing what the client sent there. Leaves `params` untouched unless
/// `span` is part of a sampled OpenTelemetry trace.
pub fn inject_meta(span: &Span, params: &mut Option<Value>) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    let span_ref = cx.span();
    let sc = span_ref.span_context();
    if !sc.is_valid() || !sc.is_sampled() {
        return;
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let Some(traceparent) = carrier.0.remove(TRACEPARENT) else {
        return;
    };
    let params = params.get_or_insert_with(|| Value::Object(Map::new()));
    let Some(object) = params.as_object_mut() else {
        return;
    };
    let meta = object
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    meta.insert(TRACEPARENT.into(), Value::String(traceparent));
    match carrier.0.remove(TRACESTATE) {
        Some(state) => meta.insert(TRACESTATE.into(), Value::String(state)),
        None => meta.remove(TRACESTATE),
    };
}

/// The W3C trace context a message carries in `params._meta`, for transports that also
/// send it as HTTP headers.
pub fn meta_trace_context(params: Option<&Value>) -> Option<(&str, Option<&str>)> {
    let meta = crate::protocol::envelope::meta(params)?;
    let traceparent = field::get(meta, TRACEPARENT)?.as_str()?;
    Some((
        traceparent,
        field::get(meta, TRACESTATE).and_then(Value::as_str),
    ))
}

/// The remote span context in a `traceparent` (and `tracestate`), if it is a valid one.
fn remote_context(
    (traceparent, tracestate): (&str, Option<&str>),
) -> Option<opentelemetry::Context> {
    let mut carrier = Carrier::default();
    carrier.0.insert(TRACEPARENT.into(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.0.insert(TRACESTATE.into(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// What a span records for a session: the first 16 hex digits of the SHA-256 of its id.
/// A session id is a capability (whoever holds it can use the session), and traces are
/// read by more people than the gateway's clients; the digest still correlates spans of one
/// session and can be matched against a known id, but not turned back into one.
pub fn session_digest(session_id: &str) -> String {
    let digest = Sha256::digest(session_id.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A request id as the conventions want it: a string, without JSON quoting.
fn id_text(id: &crate::protocol::Id) -> String {
    match id {
        crate::protocol::Id::Num(n) => n.to_string(),
        crate::protocol::Id::Str(s) => s.clone(),
    }
}

#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_digest_is_stable_short_and_not_the_id() {
        let id = "5f0c6f0e-7d5b-4a0e-9b7c-0d7b7f6f1a2b";
        let d = session_digest(id);
        assert_eq!(d.len(), 16);
        assert!(d.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(d, session_digest(id));
        assert_ne!(d, session_digest("another"));
        assert!(!id.contains(&d));
        // SHA-256("abc") starts ba7816bf8f01cfea.
        assert_eq!(session_digest("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn span_names_follow_the_conventions() {
        let params = json!({"name": "get_weather"});
        assert_eq!(
            Subject::of("tools/call", Some(&params)).span_name(),
            "tools/call get_weather"
        );
        assert_eq!(
            Subject::of("prompts/get", Some(&params)).span_name(),
            "prompts/get get_weather"
        );
        let read = json!({"uri": "file:///a"});
        let subject = Subject::of("resources/read", Some(&read));
        assert_eq!(subject.span_name(), "resources/read");
        assert_eq!(subject.uri, Some("file:///a"));
        assert_eq!(Subject::of("tools/list", None).span_name(), "tools/list");
    }

    #[test]
    fn only_valid_trace_contexts_are_adopted() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = remote_context((tp, Some("k=v"))).expect("valid");
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(sc.is_remote() && sc.is_sampled());
        assert_eq!(sc.trace_state().header(), "k=v");
        assert!(remote_context(("garbage", None)).is_none());
        assert!(
            remote_context((
                "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                None
            ))
            .is_none()
        );
    }

    #[test]
    fn no_trace_means_no_meta() {
        // No OpenTelemetry layer here: the span is disabled or has no sampled context, and
        // the upstream must see the message exactly as the client sent it.
        let span = tracing::debug_span!(target: "manifold::otel", "x");
        let mut params = Some(json!({"name": "t", "_meta": {"progressToken": 1}}));
        let before = params.clone();
        inject_meta(&span, &mut params);
        assert_eq!(params, before);
        let mut none = None;
        inject_meta(&span, &mut none);
        assert_eq!(none, None);
    }

    #[test]
    fn meta_trace_context_is_read_from_params() {
        let params = json!({"_meta": {"traceparent": "tp", "tracestate": "ts"}});
        assert_eq!(meta_trace_context(Some(&params)), Some(("tp", Some("ts"))));
        assert_eq!(meta_trace_context(Some(&json!({}))), None);
        assert_eq!(meta_trace_context(None), None);
    }
}

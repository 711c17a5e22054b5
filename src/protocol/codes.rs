//! JSON-RPC and MCP error codes, and the constructors the gateway uses for its own errors.

use serde_json::{Value, json};

use super::jsonrpc::ErrorObject;

/// Invalid JSON was received.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON sent is not a valid JSON-RPC request object.
pub const INVALID_REQUEST: i32 = -32600;
/// The method does not exist or is not served (also: capability not advertised).
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid params: unknown tool or prompt, bad cursor, missing field.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;
/// Resource not found (2024-11-05 … 2025-11-25).
pub const RESOURCE_NOT_FOUND: i32 = -32002;
/// 2026-07-28: an HTTP header disagrees with the body, or a required one is missing or
/// malformed (HTTP 400).
pub const HEADER_MISMATCH: i32 = -32020;
/// 2026-07-28: serving the request needs a client capability the request did not declare;
/// `data.requiredCapabilities` names it (HTTP 400).
pub const MISSING_CLIENT_CAPABILITY: i32 = -32021;
/// 2026-07-28: the request's protocol version is not one the server speaks;
/// `data = {supported, requested}` (HTTP 400).
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
/// The gateway's own "upstream unavailable" error: the owning upstream is down or restarting,
/// or its connection closed while the request was in flight. In the implementation-defined
/// range (-32000..-32019) so it is never mistaken for a code the upstream sent.
pub const UPSTREAM_UNAVAILABLE: i32 = -32010;
/// The gateway's own "upstream timed out" error (implementation-defined range, see above).
pub const UPSTREAM_TIMEOUT: i32 = -32011;
/// The gateway is overloaded or shutting down.
pub const GATEWAY_BUSY: i32 = -32012;

impl ErrorObject {
    /// An error with a code and a message and no data.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Attaches `data` to the error.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(PARSE_ERROR, format!("Parse error: {detail}"))
    }

    pub fn invalid_request(detail: impl std::fmt::Display) -> Self {
        Self::new(INVALID_REQUEST, format!("Invalid request: {detail}"))
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
    }

    pub fn invalid_params(detail: impl std::fmt::Display) -> Self {
        Self::new(INVALID_PARAMS, format!("Invalid params: {detail}"))
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, format!("Internal error: {detail}"))
    }

    /// The answer to a request the client cancelled.
    pub fn cancelled() -> Self {
        Self::new(REQUEST_CANCELLED, "Request cancelled by the client")
    }

    pub fn resource_not_found(uri: &str) -> Self {
        Self::new(RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"))
            .with_data(json!({ "uri": uri }))
    }

    /// A 2026-07-28 request named a revision the gateway does not speak.
    pub fn unsupported_version(requested: &str) -> Self {
        let supported = super::era::all();
        Self::new(
            UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "Unsupported protocol version {requested:?}; supported: {}",
                supported.join(", ")
            ),
        )
        .with_data(json!({ "supported": supported, "requested": requested }))
    }

    /// A 2026-07-28 HTTP header that disagrees with the body (or is missing).
    pub fn header_mismatch(detail: impl std::fmt::Display) -> Self {
        Self::new(HEADER_MISMATCH, format!("Header mismatch: {detail}"))
    }

    /// Serving the request needs `required` (a ClientCapabilities object), which the
    /// request did not declare.
    pub fn missing_capability(required: serde_json::Value, detail: impl std::fmt::Display) -> Self {
        Self::new(
            MISSING_CLIENT_CAPABILITY,
            format!("Missing required client capability: {detail}"),
        )
        .with_data(json!({ "requiredCapabilities": required }))
    }

    /// The upstream that owns the request cannot take it; `detail` says why. `detail` often
    /// quotes the upstream (an HTTP error body), so its control characters are escaped.
    pub fn upstream_unavailable(upstream: &str, detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        Self::new(
            UPSTREAM_UNAVAILABLE,
            format!(
                "Upstream '{upstream}' unavailable: {}",
                super::text::printable(&detail)
            ),
        )
        .with_data(json!({ "upstream": upstream, "source": "gateway" }))
    }

    pub fn upstream_timeout(upstream: &str, method: &str, after: std::time::Duration) -> Self {
        Self::new(
            UPSTREAM_TIMEOUT,
            format!("Upstream '{upstream}' did not answer {method} within {after:?}"),
        )
        .with_data(json!({ "upstream": upstream, "source": "gateway" }))
    }
}

/// The client cancelled the request (`notifications/cancelled`) before it completed; the
/// upstream was told to stop. Implementation-defined range.
pub const REQUEST_CANCELLED: i32 = -32013;

/// The caller is not allowed to do this: authentication failed at the edge (with HTTP 401 or
/// 403), or the policy refuses the request and `policy.denied_as` is `forbidden`.
/// Implementation-defined range.
pub const UNAUTHORIZED: i32 = -32014;

/// A rate limit refused the request; `data.retryAfterSeconds` says when to try again (and
/// HTTP answers carry 429 with `Retry-After`). Implementation-defined range.
pub const RATE_LIMITED: i32 = -32015;

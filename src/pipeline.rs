//! The middleware pipeline every client request walks before it is routed: the one entry
//! point that every downstream transport calls, `initialize` included (initialization is not
//! a back door around the stages).
//!
//! Stage order, outermost first, and why:
//! 1. tracing span — opened first so every later stage's logs and errors are attributed to
//!    the request (method, id, session).
//! 2. router — resolves the owner and forwards (`crate::router`).
//!
//! Authentication, authorization, rate limiting and task wrapping are added between 1 and 2
//! as their own modules; the transports do not change when they are.

use serde_json::Value;
use tracing::Instrument;

use crate::gateway::Gateway;
use crate::protocol::{ErrorObject, Request};
use crate::router::{self, RequestContext};

/// Runs one client request through the pipeline.
pub async fn handle(
    gateway: &Gateway,
    ctx: &RequestContext,
    req: &Request,
) -> Result<Value, ErrorObject> {
    let session = ctx.session.as_ref().map(|s| s.id.as_str()).unwrap_or("");
    let span = tracing::debug_span!("mcp.request", mcp.method.name = %req.method, jsonrpc.request.id = %req.id, mcp.session.id = %short(session));
    let outcome = router::route(gateway, ctx, req)
        .instrument(span.clone())
        .await;
    if let Err(e) = &outcome {
        span.in_scope(|| tracing::debug!(code = e.code, error = %e.message, "Request failed"));
    }
    outcome
}

/// A prefix of a session id: enough to correlate log lines, not enough to hijack a session.
fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

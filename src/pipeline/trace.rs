//! Tracing: one span per client request, carrying the MCP semantic-convention attributes.
//!
//! STUB: the OpenTelemetry work replaces the plain span with a SERVER span, adopts the
//! client's trace context and configures OTLP export.

use std::sync::Arc;

use futures::FutureExt;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::{Next, Outcome, RequestContext, Stage, short};
use crate::config::ConfigError;
use crate::gateway::Gateway;
use crate::protocol::Request;

/// The `telemetry` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Whether request spans are made at all. Default true.
    pub enabled: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { enabled: true }
    }
}

impl TelemetryConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        crate::config::section::section("telemetry", raw, errors)
    }
}

pub fn stage(config: &TelemetryConfig) -> Option<Arc<dyn Stage>> {
    config.enabled.then(|| Arc::new(Trace) as Arc<dyn Stage>)
}

struct Trace;

impl Stage for Trace {
    fn name(&self) -> &'static str {
        "trace"
    }

    fn handle<'a>(
        &'a self,
        gateway: &'a Gateway,
        ctx: &'a mut RequestContext,
        req: &'a Request,
        next: Next<'a>,
    ) -> futures::future::BoxFuture<'a, Outcome> {
        let session = ctx
            .session
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let span = tracing::debug_span!("mcp.request", mcp.method.name = %req.method, jsonrpc.request.id = %req.id, mcp.session.id = %short(&session));
        async move {
            let outcome = next.run(gateway, ctx, req).await;
            if let Err(e) = &outcome {
                tracing::debug!(code = e.code, error = %e.message, "Request failed");
            }
            outcome
        }
        .instrument(span)
        .boxed()
    }
}

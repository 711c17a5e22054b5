//! Tracing: one OpenTelemetry SERVER span per client request, carrying the MCP
//! semantic-convention attributes, child of the client's trace context (`_meta.traceparent`
//! in the request, else the `traceparent` HTTP header). The `telemetry` section also says
//! where spans are exported (see `crate::telemetry`).

use std::sync::Arc;

use tracing::Instrument;

use super::{DynStage, Next, Outcome, RequestContext, Stage};
use crate::config::telemetry::TelemetryConfig;
use crate::protocol::Request;
use crate::telemetry::spans;

pub fn stage(config: &TelemetryConfig) -> Option<Arc<dyn DynStage>> {
    config.enabled.then(|| Arc::new(Trace) as Arc<dyn DynStage>)
}

struct Trace;

impl Stage for Trace {
    fn name(&self) -> &'static str {
        "trace"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        let header = ctx
            .caller
            .trace_headers
            .as_ref()
            .map(|h| (h.traceparent.as_str(), h.tracestate.as_deref()));
        let span = spans::server_span(req, ctx.caller.transport, header);
        let this = span.clone();
        async move {
            let outcome = next.run(ctx, req).await;
            // After the request: `initialize` only has a session once it has run.
            if let Some(session) = &ctx.session {
                spans::record_session(&this, &session.id, &session.protocol_version);
            }
            spans::record_outcome(&this, &outcome);
            if let Err(e) = &outcome {
                tracing::debug!(code = e.code, error = %e.message, "Request failed");
            }
            outcome
        }
        .instrument(span)
        .await
    }
}

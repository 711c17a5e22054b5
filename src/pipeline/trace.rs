//! Tracing: one OpenTelemetry SERVER span per client request, carrying the MCP
//! semantic-convention attributes, child of the client's trace context (`_meta.traceparent`
//! in the request, else the `traceparent` HTTP header). The `telemetry` section also says
//! where spans are exported (see `crate::telemetry`).

use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;

use super::{Next, Outcome, RequestContext, Stage};
use crate::config::telemetry::TelemetryConfig;
use crate::gateway::Gateway;
use crate::protocol::Request;
use crate::telemetry::spans;

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
        let header = ctx
            .caller
            .trace_headers
            .as_ref()
            .map(|h| (h.traceparent.as_str(), h.tracestate.as_deref()));
        let span = spans::server_span(req, ctx.caller.transport, header);
        let this = span.clone();
        async move {
            let outcome = next.run(gateway, ctx, req).await;
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
        .boxed()
    }
}

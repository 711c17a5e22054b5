//! Opt-in OpenTelemetry for the fixture: with `OTEL_EXPORTER_OTLP_ENDPOINT` set (an
//! OTLP/HTTP base URL), every tool call is a SERVER span exported there, child of the trace
//! context the call arrived with. Over HTTP the `traceparent` header is honoured first (as
//! an HTTP server instrumented at the HTTP layer would), then `_meta.traceparent` (the
//! only carrier on stdio). The span records which one it used in `fixture.trace_source`.

use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::{Resource, runtime};
use rmcp::RoleServer;
use rmcp::service::RequestContext;

/// The exporter, when the environment asks for one. Call inside the Tokio runtime.
pub fn init(server: &str) -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(base) = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    // reqwest is built without a default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, runtime::Tokio).build())
        .with_resource(
            Resource::builder()
                .with_service_name(format!("fixture-{server}"))
                .build(),
        )
        .build();
    Ok(Some(provider))
}

pub fn tracer(provider: &SdkTracerProvider) -> SdkTracer {
    provider.tracer("fixture_server")
}

/// Exports what is buffered; blocking, so off the async workers.
pub async fn shutdown(provider: SdkTracerProvider) {
    let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
}

/// Starts the SERVER span of one tool call.
pub fn tool_span(
    tracer: &SdkTracer,
    tool: &str,
    context: &RequestContext<RoleServer>,
) -> opentelemetry_sdk::trace::Span {
    let mut carrier = Carrier::default();
    let mut source = "none";
    if let Some(parts) = context.extensions.get::<http::request::Parts>()
        && let Some(parent) = parts
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
    {
        source = "header";
        carrier.0.insert("traceparent".into(), parent.to_owned());
        if let Some(state) = parts
            .headers
            .get("tracestate")
            .and_then(|v| v.to_str().ok())
        {
            carrier.0.insert("tracestate".into(), state.to_owned());
        }
    } else if let Some(parent) = context.meta.get_traceparent() {
        source = "meta";
        carrier.0.insert("traceparent".into(), parent.to_owned());
        if let Some(state) = context.meta.get_tracestate() {
            carrier.0.insert("tracestate".into(), state.to_owned());
        }
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    let valid = parent.span().span_context().is_valid();
    let parent = if valid {
        parent
    } else {
        opentelemetry::Context::new()
    };
    tracer
        .span_builder(format!("tools/call {tool}"))
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("mcp.method.name", "tools/call"),
            KeyValue::new("gen_ai.tool.name", tool.to_owned()),
            KeyValue::new("fixture.trace_source", source),
        ])
        .start_with_context(tracer, &parent)
}

/// Ends a span (a named step, so callers need not import the trait).
pub fn end(mut span: opentelemetry_sdk::trace::Span) {
    span.end();
}

#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

//! Where spans go: the OTLP exporter the `telemetry` section asks for, completed from the
//! standard `OTEL_*` environment variables for whatever the section leaves unset.

use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

use crate::config::telemetry::{OtlpProtocol, TelemetryConfig};

/// The path OTLP/HTTP collectors take traces on, appended to a base endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// A resolved exporter: everything needed to build it, nothing left to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The full URL spans are sent to (for HTTP, including `/v1/traces`).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub service_name: String,
    /// Head sampling ratio in per-mille of new traces, when configured; the SDK default
    /// (parent-based, always on; or `OTEL_TRACES_SAMPLER`) otherwise.
    pub sample_permille: Option<u16>,
}

impl Settings {
    /// The exporter the configuration asks for, `None` for no export. The section wins over
    /// the environment; the environment (`env`) fills what the section leaves unset:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (a
    /// base URL), `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// `OTEL_SERVICE_NAME`. `OTEL_SDK_DISABLED=true` and `enabled: false` turn export off.
    pub fn resolve(config: &TelemetryConfig, env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let env = |key: &str| {
            env(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if !config.enabled
            || env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return None;
        }
        let protocol = config.otlp.protocol.unwrap_or_else(|| {
            env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
                .map(|p| protocol_named(&p))
                .unwrap_or(OtlpProtocol::Http)
        });
        let endpoint = match config.otlp.endpoint.as_deref() {
            Some(base) => base_endpoint(base, protocol),
            None => match env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
                Some(full) => full,
                None => base_endpoint(&env("OTEL_EXPORTER_OTLP_ENDPOINT")?, protocol),
            },
        };
        let service_name = config
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "manifold".to_owned());
        Some(Settings {
            endpoint,
            protocol,
            service_name,
            sample_permille: config.sample_ratio,
        })
    }

    /// The endpoint for logs: without user info, which may hold a credential.
    pub fn endpoint_for_logs(&self) -> String {
        match url::Url::parse(&self.endpoint) {
            Ok(mut url) => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.to_string()
            }
            Err(_) => "<unparsable>".to_owned(),
        }
    }
}

/// `grpc`, `http/protobuf`; anything else (`http/json` is not built in) means HTTP/protobuf.
fn protocol_named(name: &str) -> OtlpProtocol {
    if name.eq_ignore_ascii_case("grpc") {
        OtlpProtocol::Grpc
    } else {
        OtlpProtocol::Http
    }
}

/// A collector's base URL made into the traces endpoint: HTTP appends `/v1/traces` (unless
/// it is there already), gRPC takes the base as is.
fn base_endpoint(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::Http if base.trim_end_matches('/').ends_with(TRACES_PATH) => base.to_owned(),
        OtlpProtocol::Http => format!("{}{TRACES_PATH}", base.trim_end_matches('/')),
    }
}

/// The tracer provider exporting to `settings`: a batch processor on the Tokio runtime
/// (its delay, queue and batch sizes follow the standard `OTEL_BSP_*` variables).
pub fn provider(settings: &Settings) -> Result<SdkTracerProvider, String> {
    // The HTTP exporter is handed the gateway's own kind of client, so a machine without CA
    // certificates can still export to an `http://` collector.
    let http = crate::net::client("OTLP exporter", |builder| {
        // The standard OTLP export timeout.
        builder
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(10))
    });
    crate::net::check_url(&settings.endpoint)?;
    let exporter = match settings.protocol {
        OtlpProtocol::Http => SpanExporter::builder()
            .with_http()
            .with_http_client(http)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.clone())
            .build(),
        OtlpProtocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(settings.endpoint.clone())
            .build(),
    }
    .map_err(|e| e.to_string())?;
    let processor = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource);
    if let Some(permille) = settings.sample_permille {
        let ratio = f64::from(permille) / 1000.0;
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests;

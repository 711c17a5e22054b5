//! Logs and traces: the `tracing` subscriber (human-readable or JSON logs on stderr) and,
//! when an OTLP exporter is configured, the OpenTelemetry layer that turns the gateway's
//! SERVER and CLIENT spans into exported traces.
//!
//! Cost when no exporter is configured: no OpenTelemetry layer is installed at all. The
//! request spans are then plain `tracing` spans at DEBUG level under the [`TARGET`] target,
//! disabled (one cached callsite check) unless the log filter asks for them, and their
//! attributes are only computed for an enabled span.
//!
//! * [`export`]: which exporter the `telemetry` section and the `OTEL_*` variables ask for,
//!   and the tracer provider that sends spans there.
//! * [`spans`]: the MCP semantic-convention spans and W3C trace-context propagation.
//! * [`stderr`]: log lines written per worker wake rather than per line.

mod clock;
pub mod export;
pub mod spans;
pub mod stderr;
pub mod text;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::telemetry::TelemetryConfig;

/// How log lines are written: human-readable text, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The `tracing` target of every span meant for OpenTelemetry export. The exporting layer
/// sees only these spans, never log events (which stay on stderr).
pub const TARGET: &str = "manifold::otel";

/// How long shutdown waits for the last spans to be exported.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The installed telemetry; [`Telemetry::shutdown`] flushes what is still buffered.
#[must_use = "call shutdown() before exiting so buffered spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an exporter is configured and not disabled).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter, waiting at most a few
    /// seconds. Call it from outside the async runtime's worker threads (the runtime must
    /// still be alive: the export runs on it).
    pub fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK waits for the export without a bound of its own; an unreachable collector
        // must not hold up the exit for longer than FLUSH_TIMEOUT.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done_tx.send(provider.shutdown_with_timeout(FLUSH_TIMEOUT));
        });
        match done_rx.recv_timeout(FLUSH_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("manifold: exporting the last spans failed: {e}"),
            Err(_) => {
                eprintln!("manifold: gave up exporting the last spans after {FLUSH_TIMEOUT:?}")
            }
        }
    }
}

/// The log layer alone: stderr (through [`stderr::Stderr`]), text or JSON, filtered by `MANIFOLD_LOG` (or `RUST_LOG`),
/// default `info` (`warn` when `quiet`).
pub fn log_layer(format: LogFormat, quiet: bool) -> BoxedLayer {
    let default = if quiet { "warn" } else { "info" };
    let filter = std::env::var("MANIFOLD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // Colours only for a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let plain = matches!(format, LogFormat::Text) && !ansi;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(text::LogWriter { plain })
        .with_ansi(ansi)
        .with_timer(clock::Timestamp);
    match format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt.fmt_fields(text::TextFields).with_filter(filter).boxed(),
    }
}

/// A subscriber that only logs: for the moments before the configuration is known (loading
/// it logs too) and for commands that export nothing.
pub fn log_only(format: LogFormat, quiet: bool) -> impl tracing::Subscriber + Send + Sync {
    Registry::default().with(log_layer(format, quiet))
}

/// Installs the global subscriber: the log layer, plus the OpenTelemetry layer when the
/// configuration (or the `OTEL_*` environment) names an exporter. Must run inside the
/// Tokio runtime: the exporter's batch task is spawned on it.
pub fn init(format: LogFormat, quiet: bool, config: Option<&TelemetryConfig>) -> Telemetry {
    let settings = config.and_then(|c| export::Settings::resolve(c, &|k| std::env::var(k).ok()));
    let built = settings.as_ref().map(export::provider);
    let (otel, provider, failure) = match built {
        Some(Ok(provider)) => {
            use opentelemetry::trace::TracerProvider as _;
            let tracer = provider.tracer("manifold");
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_location(false)
                .with_target(false)
                .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE))
                .boxed();
            (Some(layer), Some(provider), None)
        }
        Some(Err(e)) => (None, None, Some(e)),
        None => (None, None, None),
    };
    Registry::default()
        .with(log_layer(format, quiet))
        .with(otel)
        .init();
    if let Some(e) = failure {
        tracing::warn!(error = %e, "OpenTelemetry export disabled: the exporter could not be built");
    }
    if let Some(s) = &settings
        && provider.is_some()
    {
        tracing::info!(endpoint = %s.endpoint_for_logs(), protocol = s.protocol.label(), service = %s.service_name, "Exporting traces over OTLP");
    }
    Telemetry { provider }
}

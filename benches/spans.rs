//! The per-request cost of tracing: a SERVER span, a CLIENT span, the `_meta` injection
//! check and the outcome records, in nanoseconds per request, with no subscriber, with logs
//! at `info` and no exporter (the default), and with the OpenTelemetry layer sampling every
//! span (export excluded). Run with `cargo bench --bench spans`; under `cargo test` it does
//! nothing.

use manifold::config::UpstreamConfig;
use manifold::protocol::Request;
use manifold::telemetry::spans::{
    client_span, inject_meta, record_outcome, record_session, server_span,
};
use serde_json::json;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("spans: skipped (run it with cargo bench --bench spans)");
        return;
    }
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;

    let req = Request::new(
        manifold::protocol::Id::Num(7),
        "tools/call",
        Some(json!({"name": "get_weather", "arguments": {"city": "Paris"}})),
    );
    let upstream: UpstreamConfig = manifold::config::from_yaml_str(
        "upstreams:\n  u:\n    url: \"http://127.0.0.1:1/mcp\"\n",
        &|_| None,
    )
    .expect("config")
    .upstreams
    .remove(0);
    let one = || {
        let server = server_span(&req, "http", None);
        let _in = server.enter();
        let client = client_span(&upstream, "tools/call", req.params_except_arguments());
        let mut params = req.params_except_arguments().cloned();
        inject_meta(&client, &mut params);
        let outcome = Ok(json!({"content": []}).into());
        record_outcome(&client, &outcome);
        record_session(&server, "session", "2025-11-25");
        record_outcome(&server, &outcome);
        std::hint::black_box(params);
    };
    // What the gateway does with the params anyway: the baseline.
    let baseline = || {
        std::hint::black_box(req.params_except_arguments().cloned());
    };
    let time = |f: &dyn Fn()| {
        const N: u32 = 200_000;
        for _ in 0..1000 {
            f();
        }
        let start = std::time::Instant::now();
        for _ in 0..N {
            f();
        }
        start.elapsed().as_nanos() / u128::from(N)
    };
    let measure = |label: &str| {
        let (base, with) = (time(&baseline), time(&one));
        println!("{label}: {with} ns per request, {base} ns baseline");
    };
    measure("no subscriber");
    let logs = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::EnvFilter::new("info")),
    );
    tracing::subscriber::with_default(logs, || measure("logs at info, no exporter"));
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let otel = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(opentelemetry::trace::TracerProvider::tracer(&provider, "m"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(manifold::telemetry::TARGET, tracing::Level::TRACE),
            ),
    );
    tracing::subscriber::with_default(otel, || {
        measure("OpenTelemetry layer, spans sampled, no export")
    });
}

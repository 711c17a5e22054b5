//! Unit tests of `export.rs`.

use super::*;
use crate::config::telemetry::OtlpConfig;

fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |key| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn with_endpoint(endpoint: &str, protocol: Option<OtlpProtocol>) -> TelemetryConfig {
    TelemetryConfig {
        otlp: OtlpConfig {
            endpoint: Some(endpoint.to_owned()),
            protocol,
        },
        ..TelemetryConfig::default()
    }
}

#[test]
fn nothing_configured_means_no_export() {
    let none = Settings::resolve(&TelemetryConfig::default(), &env_of(&[]));
    assert_eq!(none, None);
}

#[test]
fn the_section_wins_over_the_environment() {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_SERVICE_NAME", "from-env"),
    ]);
    let mut config = with_endpoint("http://yaml:4318/", Some(OtlpProtocol::Http));
    config.service_name = Some("from-yaml".into());
    let s = Settings::resolve(&config, &env).expect("exporting");
    assert_eq!(s.endpoint, "http://yaml:4318/v1/traces");
    assert_eq!(s.protocol, OtlpProtocol::Http);
    assert_eq!(s.service_name, "from-yaml");
}

#[test]
fn the_environment_fills_what_the_section_leaves_unset() {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_SERVICE_NAME", "from-env"),
    ]);
    let s = Settings::resolve(&TelemetryConfig::default(), &env).expect("exporting");
    assert_eq!(s.endpoint, "http://env:4317");
    assert_eq!(s.protocol, OtlpProtocol::Grpc);
    assert_eq!(s.service_name, "from-env");

    // The signal-specific variables win over the generic ones and are used as is.
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:9999/custom",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
    ]);
    let s = Settings::resolve(&TelemetryConfig::default(), &env).expect("exporting");
    assert_eq!(s.endpoint, "http://traces:9999/custom");
    assert_eq!(s.protocol, OtlpProtocol::Http);
    assert_eq!(s.service_name, "manifold");
}

#[test]
fn export_can_be_switched_off() {
    let env = env_of(&[("OTEL_SDK_DISABLED", "TRUE")]);
    let config = with_endpoint("http://yaml:4318", None);
    assert_eq!(Settings::resolve(&config, &env), None);
    let config = TelemetryConfig {
        enabled: false,
        ..with_endpoint("http://yaml:4318", None)
    };
    assert_eq!(Settings::resolve(&config, &env_of(&[])), None);
}

#[test]
fn http_endpoints_get_the_traces_path_once() {
    assert_eq!(
        base_endpoint("http://c:4318/v1/traces", OtlpProtocol::Http),
        "http://c:4318/v1/traces"
    );
    assert_eq!(
        base_endpoint("http://c:4318", OtlpProtocol::Http),
        "http://c:4318/v1/traces"
    );
    assert_eq!(
        base_endpoint("http://c:4317", OtlpProtocol::Grpc),
        "http://c:4317"
    );
}

#[test]
fn user_info_stays_out_of_logs() {
    let s = Settings::resolve(
        &with_endpoint("https://user:hunter2@collector:4318", None),
        &env_of(&[]),
    )
    .expect("exporting");
    let shown = s.endpoint_for_logs();
    assert!(
        !shown.contains("hunter2") && !shown.contains("user"),
        "{shown}"
    );
}

//! The `telemetry` section: whether requests are traced, and where spans are exported.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::ConfigError;

/// The `telemetry` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Whether request spans are made at all (and exported). Default true.
    pub enabled: bool,
    /// `service.name` of the exported spans; else `OTEL_SERVICE_NAME`, else `manifold`.
    pub service_name: Option<String>,
    /// Share of new traces sampled, 0.0 to 1.0, kept in per-mille (`0.25` is 250). A trace
    /// the client already sampled (or not) keeps that decision. Default: every trace.
    #[serde(deserialize_with = "ratio_permille")]
    pub sample_ratio: Option<u16>,
    /// Where spans are exported. No endpoint here or in `OTEL_EXPORTER_OTLP_*`: none.
    pub otlp: OtlpConfig,
}

/// `telemetry.otlp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://collector:4318` for HTTP, `:4317` for gRPC); for
    /// HTTP `/v1/traces` is appended unless present.
    pub endpoint: Option<String>,
    pub protocol: Option<OtlpProtocol>,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    Grpc,
    /// HTTP with protobuf bodies (`http/protobuf`).
    #[serde(alias = "http/protobuf")]
    Http,
}

impl OtlpProtocol {
    pub fn label(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::Http => "http/protobuf",
        }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            enabled: true,
            service_name: None,
            sample_ratio: None,
            otlp: OtlpConfig::default(),
        }
    }
}

impl TelemetryConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: TelemetryConfig = super::section::section("telemetry", raw, errors);
        if let Some(endpoint) = &config.otlp.endpoint {
            let ok = url::Url::parse(endpoint)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                errors.push(ConfigError::new(
                    "telemetry.otlp.endpoint",
                    format!("'{endpoint}' is not an http:// or https:// URL"),
                ));
            }
        }
        config
    }
}

fn ratio_permille<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(r) if (0.0..=1.0).contains(&r) => Ok(Some((r * 1000.0).round() as u16)),
        Some(r) => Err(serde::de::Error::custom(format!(
            "{r} is not a ratio between 0.0 and 1.0"
        ))),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(raw: Value) -> (TelemetryConfig, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let config = TelemetryConfig::from_raw(&raw, &mut errors);
        (config, errors)
    }

    #[test]
    fn the_section_parses() {
        let (config, errors) = parse(json!({
            "service_name": "edge",
            "sample_ratio": 0.25,
            "otlp": {"endpoint": "http://collector:4317", "protocol": "grpc"},
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(config.service_name.as_deref(), Some("edge"));
        assert_eq!(config.sample_ratio, Some(250));
        assert_eq!(config.otlp.protocol, Some(OtlpProtocol::Grpc));
        let (config, _) = parse(json!({"otlp": {"protocol": "http/protobuf"}}));
        assert_eq!(config.otlp.protocol, Some(OtlpProtocol::Http));
        assert_eq!(parse(Value::Null).0, TelemetryConfig::default());
    }

    #[test]
    fn bad_values_are_reported_with_their_path() {
        let (_, errors) = parse(json!({"sample_ratio": 1.5}));
        assert_eq!(errors[0].path, "telemetry.sample_ratio", "{errors:?}");
        let (_, errors) = parse(json!({"otlp": {"endpoint": "collector:4317"}}));
        assert_eq!(errors[0].path, "telemetry.otlp.endpoint", "{errors:?}");
        let (_, errors) = parse(json!({"otlp": {"protocol": "carrier-pigeon"}}));
        assert_eq!(errors[0].path, "telemetry.otlp.protocol", "{errors:?}");
    }
}

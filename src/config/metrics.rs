//! The `metrics` section: whether requests are counted, and where `/metrics` is served.

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

/// The `metrics` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether requests are counted and the endpoint is served. Default true.
    pub enabled: bool,
    /// Path of the Prometheus endpoint. Default `/metrics`.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            path: "/metrics".to_owned(),
        }
    }
}

impl MetricsConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: Self = super::section::section("metrics", raw, errors);
        if !config.path.starts_with('/') || config.path.contains(['?', '#']) {
            errors.push(ConfigError::new(
                "metrics.path",
                "must start with '/' and hold no '?' or '#'",
            ));
        }
        config
    }
}

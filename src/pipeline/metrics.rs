//! Prometheus metrics: the registry, the `metrics` stage that counts and times requests, and
//! the text served at `/metrics`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::Stage;
use crate::config::ConfigError;

/// The `metrics` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether requests are counted and `/metrics` is served. Default true.
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
        crate::config::section::section("metrics", raw, errors)
    }
}

/// Every metric the gateway keeps.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    /// A rate-limit rejection, by which limit refused (`global`, `principal`, `upstream`,
    /// `tool`, `concurrency`).
    pub fn rate_limited(&self, _limit: &'static str) {}
}

pub fn stage(_config: &MetricsConfig, _metrics: &Arc<Metrics>) -> Option<Arc<dyn Stage>> {
    None
}

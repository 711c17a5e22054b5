//! Rate limits (governor token buckets) and per-upstream concurrency caps.
//!
//! STUB: filled in by the rate-limit work.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::Stage;
use super::metrics::Metrics;
use crate::config::{Config, ConfigError};

/// The `rate_limits` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {}

impl RateLimitConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        crate::config::section::section("rate_limits", raw, errors)
    }
}

pub fn stage(_config: &Config, _metrics: &Arc<Metrics>) -> Option<Arc<dyn Stage>> {
    None
}

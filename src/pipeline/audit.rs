//! The audit log: one structured line per tool call, prompt get and resource read.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::Stage;
use crate::config::ConfigError;

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Whether audit lines are written. Default true.
    pub enabled: bool,
    /// Whether tool arguments appear in audit lines; otherwise only their names. Default false.
    pub include_arguments: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            include_arguments: false,
        }
    }
}

impl AuditConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        crate::config::section::section("audit", raw, errors)
    }
}

pub fn stage(_config: &AuditConfig) -> Option<Arc<dyn Stage>> {
    None
}

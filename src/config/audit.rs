//! The `audit` section: whether audit lines are written, and with argument values or not.

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Whether audit lines are written. Default true.
    pub enabled: bool,
    /// Whether argument values appear in audit lines; otherwise only their names. Default
    /// false.
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
        super::section::section("audit", raw, errors)
    }
}

//! Authorization policy: rules by principal, claim or scope that allow or deny tools,
//! prompts and resources; listings filtered on the way out.
//!
//! STUB: filled in by the policy work.

use serde::Deserialize;
use serde_json::Value;

use super::Stage;
use crate::config::ConfigError;

/// The `policy` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {}

impl PolicyConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        crate::config::section::section("policy", raw, errors)
    }
}

pub fn stage(_config: &PolicyConfig) -> Option<std::sync::Arc<dyn Stage>> {
    None
}

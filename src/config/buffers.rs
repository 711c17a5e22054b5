//! The `buffers` section: how many bytes of answers and notifications the gateway keeps for
//! its clients (resumable event logs and streams nobody is reading), per session and in all.

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

/// Default `buffers.session_bytes` (16 MiB).
pub const DEFAULT_SESSION_BYTES: usize = 16 * 1024 * 1024;
/// Default `buffers.total_bytes` (256 MiB).
pub const DEFAULT_TOTAL_BYTES: usize = 256 * 1024 * 1024;

/// The `buffers` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuffersConfig {
    /// Bytes of messages one session may have waiting in its streams (unread, or kept for
    /// `Last-Event-ID` resumption). Past it the oldest are dropped.
    pub session_bytes: usize,
    /// The same, summed over every session of the gateway.
    pub total_bytes: usize,
}

impl Default for BuffersConfig {
    fn default() -> Self {
        BuffersConfig {
            session_bytes: DEFAULT_SESSION_BYTES,
            total_bytes: DEFAULT_TOTAL_BYTES,
        }
    }
}

impl BuffersConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: Self = super::section::section("buffers", raw, errors);
        if config.session_bytes == 0 {
            errors.push(ConfigError::new(
                "buffers.session_bytes",
                "must be at least 1",
            ));
        }
        if config.total_bytes < config.session_bytes {
            errors.push(ConfigError::new(
                "buffers.total_bytes",
                "must be at least buffers.session_bytes",
            ));
        }
        config
    }
}

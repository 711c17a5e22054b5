//! The `connections` and `sessions` sections: how many TCP connections and client sessions
//! the HTTP face holds, for how long, and how many of them one source or one principal may
//! take. Every value has a default, so the sections are needed only to change them.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;
use super::section::duration;

/// The `connections` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Most TCP connections open at once; one more is answered 503 and closed. Default 4096.
    pub max: usize,
    /// Most connections open at once from one IP address that have not proved credentials
    /// (0: no per-source limit). Default 256.
    pub per_source: usize,
    /// Time a client has to send a request's headers (HTTP/1.1). Default 10 s.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body once its headers are in. Default 30 s.
    #[serde(with = "duration")]
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed. Default 120 s.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            max: 4096,
            per_source: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl ConnectionsConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: Self = super::section::section("connections", raw, errors);
        if config.max == 0 {
            errors.push(ConfigError::new("connections.max", "must be at least 1"));
        }
        for (key, value) in [
            ("header_timeout", config.header_timeout),
            ("body_timeout", config.body_timeout),
            ("idle_timeout", config.idle_timeout),
        ] {
            if value.is_zero() {
                errors.push(ConfigError::new(
                    format!("connections.{key}"),
                    "must be longer than 0",
                ));
            }
        }
        config
    }
}

/// The `sessions` section (the idle timeout is the top-level `session_idle_timeout`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Most client sessions at once. Default 10 000.
    pub max: usize,
    /// Most sessions one authenticated principal may hold (0: no limit). Default 100.
    pub per_principal: usize,
    /// Most anonymous sessions opened from one IP address (0: no limit). Default 100.
    pub per_source: usize,
    /// A session that made no request since `initialize` expires after this long. Default 30 s.
    #[serde(with = "duration")]
    pub unused_timeout: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max: 10_000,
            per_principal: 100,
            per_source: 100,
            unused_timeout: Duration::from_secs(30),
        }
    }
}

impl SessionsConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: Self = super::section::section("sessions", raw, errors);
        if config.max == 0 {
            errors.push(ConfigError::new("sessions.max", "must be at least 1"));
        }
        if config.unused_timeout.is_zero() {
            errors.push(ConfigError::new(
                "sessions.unused_timeout",
                "must be longer than 0",
            ));
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_overrides() {
        let mut errors = Vec::new();
        let c = ConnectionsConfig::from_raw(&Value::Null, &mut errors);
        assert_eq!(c, ConnectionsConfig::default());
        let c = ConnectionsConfig::from_raw(
            &json!({"max": 10, "per_source": 0, "header_timeout": "2s", "idle_timeout": 5}),
            &mut errors,
        );
        assert_eq!((c.max, c.per_source), (10, 0));
        assert_eq!(c.header_timeout, Duration::from_secs(2));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        let s = SessionsConfig::from_raw(&json!({"unused_timeout": "500ms"}), &mut errors);
        assert_eq!(s.unused_timeout, Duration::from_millis(500));
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn zero_bounds_are_refused_by_path() {
        let mut errors = Vec::new();
        ConnectionsConfig::from_raw(&json!({"max": 0, "body_timeout": 0}), &mut errors);
        SessionsConfig::from_raw(&json!({"max": 0, "unused_timeout": "0s"}), &mut errors);
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "connections.max",
                "connections.body_timeout",
                "sessions.max",
                "sessions.unused_timeout"
            ]
        );
    }
}

//! The serde shapes of gateway.yaml, exactly as written: lenient scalars, checked later.
//!
//! Enumerations, durations, URLs and keys are kept as text here and parsed by `validate`, so
//! one bad value does not stop serde before the other problems have been found.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use super::model;

/// Top-level keys of gateway.yaml; the environment layer only maps variables onto these.
pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "path",
    "separator",
    "max_name_length",
    "page_size",
    "collisions",
    "session_idle_timeout",
    "shutdown_grace",
    "max_body_bytes",
    "response_mode",
    "resume_window",
    "first_event_wait",
    "seal_key",
    "redis",
    "security",
    "upstreams",
    "auth",
    "policy",
    "rate_limits",
    "telemetry",
    "metrics",
    "audit",
    "tasks",
    "connections",
    "sessions",
    "buffers",
];

/// gateway.yaml. `U` is the shape of one upstream: the loader first reads each upstream as an
/// opaque value and deserialises it separately, so a typo in one upstream does not hide the
/// problems in the others.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of gateway settings"
)]
#[serde(bound(deserialize = "U: Deserialize<'de>"))]
pub struct RawConfig<U = RawUpstream> {
    pub listen: String,
    pub path: String,
    pub separator: String,
    #[serde(deserialize_with = "count")]
    pub max_name_length: u64,
    #[serde(deserialize_with = "count")]
    pub page_size: u64,
    pub collisions: String,
    pub session_idle_timeout: RawDuration,
    pub shutdown_grace: RawDuration,
    #[serde(deserialize_with = "count")]
    pub max_body_bytes: u64,
    pub response_mode: String,
    pub resume_window: RawDuration,
    pub first_event_wait: RawDuration,
    pub seal_key: Option<String>,
    /// The shared Redis (`config::redis`): a URL or a mapping.
    pub redis: serde_json::Value,
    pub security: RawSecurity,
    #[serde(deserialize_with = "nullable")]
    pub upstreams: BTreeMap<String, U>,
    // Sections of the pipeline stages: each has a module of its own here, which parses and
    // checks it (see `config::section`).
    pub auth: serde_json::Value,
    pub policy: serde_json::Value,
    pub rate_limits: serde_json::Value,
    pub telemetry: serde_json::Value,
    pub metrics: serde_json::Value,
    pub audit: serde_json::Value,
    pub tasks: serde_json::Value,
    // Bounds on what clients may hold (`config::limits`).
    pub connections: serde_json::Value,
    pub sessions: serde_json::Value,
    pub buffers: serde_json::Value,
}

/// The `security` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping of security settings"
)]
pub struct RawSecurity {
    /// `auto`, `on` or `off`; YAML booleans are accepted as `on`/`off`.
    #[serde(deserialize_with = "toggle")]
    pub dns_rebinding_protection: String,
    #[serde(deserialize_with = "nullable")]
    pub allowed_hosts: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub allowed_origins: Vec<String>,
}

/// One entry of `upstreams`. Transport fields are optional so that `validate` can say which
/// ones do not belong to the kind of upstream chosen.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping describing an upstream"
)]
pub struct RawUpstream {
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub transport: Option<String>,
    pub prefix: Option<String>,
    pub timeout: Option<RawDuration>,
    pub tools: RawFilter,
    pub prompts: RawFilter,
    pub resources: RawFilter,
    pub session: Option<String>,
    pub protocol: Option<String>,
    pub max_concurrency: Option<u64>,
    pub tool_timeouts: Option<BTreeMap<String, RawDuration>>,
    pub tasks: Option<String>,
    pub tool_tasks: Option<BTreeMap<String, String>>,
    pub identity_headers: Option<BTreeMap<String, String>>,
    pub circuit: Option<RawCircuit>,
    pub retry_lists: Option<bool>,
}

/// `circuit` of an upstream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with failures and cooldown"
)]
pub struct RawCircuit {
    pub failures: Option<u64>,
    pub cooldown: Option<RawDuration>,
}

/// `tools`, `prompts` or `resources` of an upstream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with allow and deny lists"
)]
pub struct RawFilter {
    pub allow: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    pub deny: Vec<String>,
}

/// A duration as written: an integer number of seconds or text such as `30m`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl<U> Default for RawConfig<U> {
    fn default() -> Self {
        RawConfig {
            listen: model::DEFAULT_LISTEN.to_string(),
            path: model::DEFAULT_PATH.to_owned(),
            separator: model::DEFAULT_SEPARATOR.to_owned(),
            max_name_length: as_u64(model::DEFAULT_MAX_NAME_LENGTH),
            page_size: as_u64(model::DEFAULT_PAGE_SIZE),
            collisions: "error".to_owned(),
            session_idle_timeout: RawDuration::Seconds(
                model::DEFAULT_SESSION_IDLE_TIMEOUT.as_secs(),
            ),
            shutdown_grace: RawDuration::Seconds(model::DEFAULT_SHUTDOWN_GRACE.as_secs()),
            max_body_bytes: as_u64(model::DEFAULT_MAX_BODY_BYTES),
            response_mode: "stream".to_owned(),
            resume_window: RawDuration::Seconds(model::DEFAULT_RESUME_WINDOW.as_secs()),
            first_event_wait: RawDuration::Seconds(model::DEFAULT_FIRST_EVENT_WAIT.as_secs()),
            seal_key: None,
            redis: serde_json::Value::Null,
            security: RawSecurity::default(),
            upstreams: BTreeMap::new(),
            auth: empty_section(),
            policy: empty_section(),
            rate_limits: empty_section(),
            telemetry: empty_section(),
            metrics: empty_section(),
            audit: empty_section(),
            tasks: empty_section(),
            connections: empty_section(),
            sessions: empty_section(),
            buffers: empty_section(),
        }
    }
}

impl<U> RawConfig<U> {
    /// The same settings with the upstreams replaced (by their typed form, say).
    pub fn with_upstreams<V>(self, upstreams: BTreeMap<String, V>) -> RawConfig<V> {
        RawConfig {
            listen: self.listen,
            path: self.path,
            separator: self.separator,
            max_name_length: self.max_name_length,
            page_size: self.page_size,
            collisions: self.collisions,
            session_idle_timeout: self.session_idle_timeout,
            shutdown_grace: self.shutdown_grace,
            max_body_bytes: self.max_body_bytes,
            response_mode: self.response_mode,
            resume_window: self.resume_window,
            first_event_wait: self.first_event_wait,
            seal_key: self.seal_key,
            redis: self.redis,
            security: self.security,
            upstreams,
            auth: self.auth,
            policy: self.policy,
            rate_limits: self.rate_limits,
            telemetry: self.telemetry,
            metrics: self.metrics,
            audit: self.audit,
            tasks: self.tasks,
            connections: self.connections,
            sessions: self.sessions,
            buffers: self.buffers,
        }
    }
}

impl Default for RawSecurity {
    fn default() -> Self {
        RawSecurity {
            dns_rebinding_protection: "auto".to_owned(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

/// A stage section left at its defaults: an empty mapping.
fn empty_section() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = RawDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"10s\" or an integer number of seconds")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawDuration, E> {
        Ok(RawDuration::Seconds(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawDuration, E> {
        u64::try_from(value)
            .map(RawDuration::Seconds)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RawDuration, E> {
        Ok(RawDuration::Text(value.to_owned()))
    }
}

/// A list or map that may be left empty in YAML (`upstreams:` with every entry commented out).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A non-negative integer, also accepted as text so `${VAR}` can supply it.
fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(CountVisitor)
}

struct CountVisitor;

impl Visitor<'_> for CountVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<u64, E> {
        value
            .trim()
            .parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(value), &self))
    }
}

/// `auto`/`on`/`off` as text, with booleans mapped to `on`/`off`.
fn toggle<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(ToggleVisitor)
}

struct ToggleVisitor;

impl Visitor<'_> for ToggleVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("auto, on or off")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
        Ok(if value { "on" } else { "off" }.to_owned())
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        // Environment variables and `${VAR}` arrive as text, booleans included.
        Ok(match value {
            "true" => "on",
            "false" => "off",
            other => other,
        }
        .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_keys_list_every_field() {
        let defaults = serde_json::to_value(RawConfig::<RawUpstream>::default()).unwrap();
        let fields: Vec<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, TOP_LEVEL_KEYS);
    }
}

//! The `tasks` section, and the task mode a request gets from its upstream's configuration.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::section::duration;
use super::{ConfigError, TaskMode, UpstreamConfig};
use crate::protocol::methods;

/// The `tasks` section.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasksConfig {
    /// `redis://[user:password@]host:port[/db]`: task state in that Redis, so every replica
    /// answers for every task. Default none: this process's memory.
    pub redis: Option<String>,
    /// Prefix of every Redis key the gateway writes. Default `manifold`.
    pub redis_prefix: String,
    /// A call of a 2026-07-28 client that declared the tasks extension becomes a task when
    /// it has not finished after this long. `0` turns it off. Default 5 seconds.
    #[serde(with = "duration")]
    pub threshold: Duration,
    /// Lifetime of a task whose client asked for none. Default 1 hour.
    #[serde(with = "duration")]
    pub default_ttl: Duration,
    /// Longest lifetime granted, whatever the client asks. Default 24 hours.
    #[serde(with = "duration")]
    pub max_ttl: Duration,
    /// How often clients are told to poll. Default 1 second.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Most live tasks per principal; a request that would create one more is refused with
    /// -32012 (gateway busy), or, past `threshold`, simply keeps running. Default 100.
    pub max_per_principal: usize,
}

impl Default for TasksConfig {
    fn default() -> Self {
        TasksConfig {
            redis: None,
            redis_prefix: "manifold".into(),
            threshold: Duration::from_secs(5),
            default_ttl: Duration::from_secs(3600),
            max_ttl: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
            max_per_principal: 100,
        }
    }
}

impl fmt::Debug for TasksConfig {
    // Hand-written: the Redis URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TasksConfig")
            .field("redis", &self.redis.as_ref().map(|_| "<redacted>"))
            .field("redis_prefix", &self.redis_prefix)
            .field("threshold", &self.threshold)
            .field("default_ttl", &self.default_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("poll_interval", &self.poll_interval)
            .field("max_per_principal", &self.max_per_principal)
            .finish()
    }
}

impl TasksConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        let config: TasksConfig = super::section::section("tasks", raw, errors);
        if let Some(url) = &config.redis
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            errors.push(ConfigError::new(
                "tasks.redis",
                "must be a redis:// or rediss:// URL",
            ));
        }
        if config.max_per_principal == 0 {
            errors.push(ConfigError::new(
                "tasks.max_per_principal",
                "must be at least 1",
            ));
        }
        if config.max_ttl.is_zero() || config.default_ttl.is_zero() {
            errors.push(ConfigError::new("tasks", "ttls must be longer than 0"));
        }
        if config.poll_interval.is_zero() {
            errors.push(ConfigError::new(
                "tasks.poll_interval",
                "must be longer than 0",
            ));
        }
        config
    }

    /// The lifetime granted for a requested one (milliseconds; `None`: the default).
    pub fn ttl_ms(&self, requested: Option<u64>) -> u64 {
        let max = u64::try_from(self.max_ttl.as_millis()).unwrap_or(u64::MAX);
        let default = u64::try_from(self.default_ttl.as_millis()).unwrap_or(u64::MAX);
        requested.unwrap_or(default).clamp(1, max)
    }

    pub fn poll_ms(&self) -> u64 {
        u64::try_from(self.poll_interval.as_millis()).unwrap_or(1000)
    }
}
impl UpstreamConfig {
    /// The configured task mode for a request to this upstream: per tool glob for
    /// `tools/call`, else the upstream's. `always` applies to tools only; a prompt or a read
    /// is a task when asked.
    pub fn task_mode(&self, method: &str, name: Option<&str>) -> TaskMode {
        if method != methods::TOOLS_CALL {
            return match self.tasks {
                TaskMode::Always => TaskMode::OnRequest,
                other => other,
            };
        }
        name.and_then(|tool| {
            self.tool_tasks
                .iter()
                .find(|(pattern, _)| pattern.matches(tool))
                .map(|(_, mode)| *mode)
        })
        .unwrap_or(self.tasks)
    }
}

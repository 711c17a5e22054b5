//! The top-level `redis` section: the Redis that replicas share. Naming one turns on every
//! shared feature at once (sessions served by any replica, messages routed to the replica
//! holding a client's stream, rate limits counted across replicas, tasks), for every replica
//! that names the same Redis and `seal_key`.
//!
//! Written as a URL (`redis: redis://:${REDIS_PASSWORD}@redis:6379/0`) or as a mapping when
//! the defaults below need changing (`redis: {url: ..., prefix: ..., timeout: 250ms}`).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;
use super::section::duration;

/// Default `redis.timeout`: what a request waits for Redis before it is answered without it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The `redis` section, validated.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…`.
    pub url: String,
    /// Starts every key and channel the gateway uses. Default `manifold`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long one Redis operation may take before the request that needs it gets an error
    /// (or, for rate limits, the configured failure mode). Default 1 second.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_prefix() -> String {
    "manifold".into()
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

impl fmt::Debug for RedisConfig {
    // Hand-written: the URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisConfig {
    /// `None` when the section is absent, null or an empty URL (`redis: ${REDIS_URL:-}`).
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Option<Self> {
        let config = match raw {
            Value::Null => return None,
            Value::String(url) if url.trim().is_empty() => return None,
            Value::String(url) => RedisConfig {
                url: url.trim().to_owned(),
                prefix: default_prefix(),
                timeout: DEFAULT_TIMEOUT,
            },
            Value::Object(_) => match serde_path_to_error::deserialize::<_, RedisConfig>(raw) {
                Ok(config) if config.url.trim().is_empty() => return None,
                Ok(config) => config,
                Err(error) => {
                    let inner = error.path().to_string();
                    let path = if inner == "." || inner.is_empty() {
                        "redis".to_owned()
                    } else {
                        format!("redis.{inner}")
                    };
                    errors.push(ConfigError::new(path, error.into_inner().to_string()));
                    return None;
                }
            },
            _ => {
                errors.push(ConfigError::new(
                    "redis",
                    "must be a redis:// URL or a mapping with url, prefix and timeout",
                ));
                return None;
            }
        };
        if !(config.url.starts_with("redis://") || config.url.starts_with("rediss://")) {
            errors.push(ConfigError::new(
                "redis.url",
                "must be a redis:// or rediss:// URL",
            ));
        }
        if config.prefix.is_empty() || config.prefix.contains(char::is_whitespace) {
            errors.push(ConfigError::new(
                "redis.prefix",
                "must be a non-empty word without spaces",
            ));
        }
        if config.timeout.is_zero() {
            errors.push(ConfigError::new("redis.timeout", "must be more than 0"));
        }
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<crate::config::Config, String> {
        crate::config::from_yaml_str(yaml, &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn a_url_or_a_mapping_names_the_shared_redis() {
        let config = load("redis: redis://127.0.0.1:6379/0\n").unwrap();
        let redis = config.redis.as_ref().unwrap();
        assert_eq!(redis.url, "redis://127.0.0.1:6379/0");
        assert_eq!(
            (redis.prefix.as_str(), redis.timeout),
            ("manifold", DEFAULT_TIMEOUT)
        );
        let config = load("redis: {url: 'rediss://r:6380', prefix: mf, timeout: 250ms}\n").unwrap();
        let redis = config.redis.as_ref().unwrap();
        assert_eq!(
            (redis.prefix.as_str(), redis.timeout),
            ("mf", Duration::from_millis(250))
        );
        assert!(load("redis: ''\n").unwrap().redis.is_none());
        assert!(load("{}").unwrap().redis.is_none());
    }

    #[test]
    fn the_shared_redis_stores_tasks_unless_tasks_names_its_own() {
        let config = load("redis: {url: 'redis://a:1', prefix: mf}\n").unwrap();
        assert_eq!(config.tasks.redis.as_deref(), Some("redis://a:1"));
        assert_eq!(config.tasks.redis_prefix, "mf");
        let config = load("redis: redis://a:1\ntasks: {redis: 'redis://b:2'}\n").unwrap();
        assert_eq!(config.tasks.redis.as_deref(), Some("redis://b:2"));
    }

    #[test]
    fn the_url_never_shows_in_debug_output() {
        let config = load("redis: redis://:hunter2@127.0.0.1:6379\n").unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_are_reported_with_their_path() {
        for (yaml, expected) in [
            ("redis: http://x\n", "redis.url: must be a redis://"),
            (
                "redis: {url: 'redis://x', timout: 1s}\n",
                "redis.timout: unknown field",
            ),
            (
                "redis: {url: 'redis://x', timeout: 0s}\n",
                "redis.timeout: must be more",
            ),
            ("redis: [1]\n", "redis: must be a redis:// URL or a mapping"),
        ] {
            let error = load(yaml).expect_err(yaml);
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}

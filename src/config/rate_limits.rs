//! The `rate_limits` section: its serde shape and the checks against the upstream list.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{Config, ConfigError, Pattern};

/// The `rate_limits` section. Every limit is a token bucket: `burst` requests at once, then
/// `rate` on average.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// One bucket for every request the gateway receives.
    pub global: Option<Limit>,
    /// One bucket per principal subject, for every request.
    pub per_principal: Option<Limit>,
    /// Upstream name → a bucket for the calls routed to it.
    pub per_upstream: BTreeMap<String, Limit>,
    /// Glob over exposed tool names → a bucket per matching tool, for `tools/call`. A tool
    /// matching several globs must pass each of them.
    #[serde(deserialize_with = "tool_limits")]
    pub per_tool: Vec<(Pattern, Limit)>,
    /// Where the buckets are counted when a shared `redis` is configured: `shared` (the
    /// default: one count across every replica) or `replica` (each replica its own, so N
    /// replicas admit N times the rate). Without `redis` every bucket is this replica's.
    pub scope: Scope,
    /// What a shared bucket does when Redis cannot answer within `redis.timeout`: `open`
    /// (the default: admit, and log a warning) or `closed` (refuse with -32015, rate limited).
    pub on_redis_error: FailMode,
}

/// `rate_limits.scope`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Shared,
    Replica,
}

/// `rate_limits.on_redis_error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    #[default]
    Open,
    Closed,
}

/// One token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Sustained rate, `N/s`, `N/m`, `N/h` or `N/d`.
    pub rate: Rate,
    /// Requests allowed at once when the bucket is full. Default: the `N` of the rate.
    #[serde(default)]
    pub burst: Option<NonZeroU32>,
}

/// `N` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Limit {
    /// The governor quota: one request replenished every `per / count`, `burst` at most.
    pub fn quota(&self) -> Quota {
        let burst = self.burst.unwrap_or(self.rate.count);
        // `Rate` is only built with an interval of at least a nanosecond (checked when parsed).
        Quota::with_period(self.rate.per / self.rate.count.get())
            .expect("a positive replenish interval")
            .allow_burst(burst)
    }
}

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("invalid rate {text:?}: expected N/s, N/m, N/h or N/d, e.g. 10/s");
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count)
            .ok_or_else(|| format!("invalid rate {text:?}: N must be at least 1"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        if (per / count.get()).is_zero() {
            return Err(format!(
                "invalid rate {text:?}: more than one per nanosecond"
            ));
        }
        Ok(Rate { count, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn tool_limits<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Pattern, Limit)>, D::Error> {
    BTreeMap::<String, Limit>::deserialize(d)?
        .into_iter()
        .map(|(glob, limit)| {
            Ok((
                Pattern::new(&glob).map_err(serde::de::Error::custom)?,
                limit,
            ))
        })
        .collect()
}

impl RateLimitConfig {
    pub fn from_raw(raw: &Value, errors: &mut Vec<ConfigError>) -> Self {
        super::section::section("rate_limits", raw, errors)
    }

    /// Whether any bucket is configured.
    pub fn is_empty(&self) -> bool {
        self.global.is_none()
            && self.per_principal.is_none()
            && self.per_upstream.is_empty()
            && self.per_tool.is_empty()
    }
}

/// Every `per_upstream` key must name an upstream.
pub fn check(config: &Config, errors: &mut Vec<ConfigError>) {
    for name in config.rate_limits.per_upstream.keys() {
        if config.upstream(name).is_none() {
            errors.push(ConfigError::new(
                format!("rate_limits.per_upstream.{name}"),
                format!("unknown upstream {name:?}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Config, String> {
        let upstreams = "upstreams: {github: {command: x}}\n";
        crate::config::from_yaml_str(&format!("{upstreams}{yaml}"), &|_| None)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rates_and_bursts_become_quotas() {
        let config = load(
            "rate_limits:\n  global: {rate: 100/s, burst: 200}\n  per_principal: {rate: 10/m}\n  per_upstream: {github: {rate: 1/h, burst: 2}}\n  per_tool: {\"github__create_*\": {rate: 3/d}}\n",
        )
        .unwrap();
        let limits = &config.rate_limits;
        let global = limits.global.unwrap().quota();
        assert_eq!(global.burst_size().get(), 200);
        assert_eq!(global.replenish_interval(), Duration::from_millis(10));
        let principal = limits.per_principal.unwrap().quota();
        assert_eq!(principal.burst_size().get(), 10);
        assert_eq!(principal.replenish_interval(), Duration::from_secs(6));
        let upstream = limits.per_upstream["github"].quota();
        assert_eq!(
            (upstream.burst_size().get(), upstream.replenish_interval()),
            (2, Duration::from_secs(3600))
        );
        assert_eq!(limits.per_tool[0].0.as_str(), "github__create_*");
        assert!(limits.per_tool[0].0.matches("github__create_issue"));
        assert_eq!(
            limits.per_tool[0].1.quota().replenish_interval(),
            Duration::from_secs(28_800)
        );
    }

    #[test]
    fn buckets_are_shared_through_redis_unless_scoped_to_the_replica() {
        let config = load("rate_limits: {global: {rate: 1/s}}").unwrap();
        assert_eq!(config.rate_limits.scope, Scope::Shared);
        assert_eq!(config.rate_limits.on_redis_error, FailMode::Open);
        let config =
            load("rate_limits: {scope: replica, on_redis_error: closed, global: {rate: 1/s}}")
                .unwrap();
        assert_eq!(config.rate_limits.scope, Scope::Replica);
        assert_eq!(config.rate_limits.on_redis_error, FailMode::Closed);
        let error = load("rate_limits: {scope: cluster}").unwrap_err();
        assert!(
            error.contains("rate_limits.scope: unknown variant"),
            "{error}"
        );
    }

    #[test]
    fn bad_rates_bursts_globs_and_upstreams_are_reported_with_their_path() {
        let cases = [
            (
                "rate_limits: {global: {rate: \"10\"}}",
                "rate_limits.global.rate: invalid rate \"10\"",
            ),
            (
                "rate_limits: {global: {rate: 0/s}}",
                "rate_limits.global.rate: invalid rate \"0/s\": N must be at least 1",
            ),
            (
                "rate_limits: {global: {rate: 1/w}}",
                "expected N/s, N/m, N/h or N/d",
            ),
            (
                "rate_limits: {global: {rate: 1/s, burst: 0}}",
                "rate_limits.global.burst:",
            ),
            (
                "rate_limits: {global: {rate: 1/s, brust: 2}}",
                "rate_limits.global.brust: unknown field",
            ),
            (
                "rate_limits: {per_upstream: {gitlab: {rate: 1/s}}}",
                "rate_limits.per_upstream.gitlab: unknown upstream \"gitlab\"",
            ),
            (
                "rate_limits: {per_tool: {\"[\": {rate: 1/s}}}",
                "invalid glob \"[\"",
            ),
        ];
        for (yaml, expected) in cases {
            let error = load(yaml).expect_err(yaml);
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }
}

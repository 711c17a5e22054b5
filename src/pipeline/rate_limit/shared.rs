//! Buckets counted in the shared Redis (`redis` set, `rate_limits.scope: shared`), so the
//! configured rates hold across every replica that names the same Redis.
//!
//! Each bucket is a GCRA cell: one key holding its *theoretical arrival time* (TAT, in
//! microseconds of Redis's own clock). A request costs one interval `T = per / count`; it is
//! admitted while `max(TAT, now) + T - now <= burst × T`, which is governor's token bucket
//! (`burst` at once, then one per `T`). One Lua script per request reads the clock with
//! `TIME` (so replicas' clocks never matter), checks every bucket the request falls under
//! and charges them only if all admit: unlike the local buckets, a request refused by one
//! bucket spends nothing of the others. Each key expires when its bucket is full again (its
//! TAT), so idle keys cost nothing and a full bucket is just a missing key.
//!
//! Keys: `{prefix}:rl:global`, `{prefix}:rl:principal:{h}` (`h` a SHA-256 of the
//! authentication method and subject, so keys have a bounded length and name nobody),
//! `{prefix}:rl:upstream:{name}` and `{prefix}:rl:tool:{g}:{tool}` (`g` a SHA-256 of the
//! glob: a tool matching several globs has one bucket for each).
//!
//! When the script fails (Redis down, slower than `redis.timeout`, a script error),
//! `rate_limits.on_redis_error` decides: `open` admits, `closed` refuses with -32015 saying
//! the store is unavailable. Either way the fault is counted
//! (`manifold_rate_limit_store_errors_total`) and logged once per outage, with an info line
//! when Redis answers again. After a fault Redis is left alone for [`HOLD_OFF`]: requests
//! meanwhile get the failure mode at once, and the first one after it asks Redis again (the
//! others keep getting the failure mode while it does). A Redis that hangs would otherwise
//! make every request wait the whole `redis.timeout`, and `open` would admit, but slowly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Limit, Refusal, Routed};
use crate::config::auth::AuthMethod;
use crate::config::rate_limits::FailMode;
use crate::config::{Config, Pattern};
use crate::net::redis::{Redis, RedisFault};
use crate::pipeline::metrics::Metrics;
use crate::protocol::{ErrorObject, codes};

/// KEYS: one per bucket. ARGV: per bucket, its interval (µs) and its burst.
/// Returns `{0, 0}` when every bucket admitted (and was charged), else `{i, wait}`: the
/// 1-based bucket that keeps the request refused longest and the µs until it would admit.
const SCRIPT: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tats = {}
local worst, worst_wait = 0, 0
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '') or now
  if tat < now then tat = now end
  local next_tat = tat + interval
  local wait = next_tat - interval * burst - now
  if wait > worst_wait then worst, worst_wait = i, wait end
  tats[i] = next_tat
end
if worst > 0 then return {worst, math.ceil(worst_wait)} end
for i = 1, #KEYS do
  local ttl = math.max(1, math.ceil((tats[i] - now) / 1000))
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
end
return {0, 0}
";

/// How long Redis is left alone after a fault.
pub(super) const HOLD_OFF: Duration = Duration::from_millis(500);

/// One bucket's shape: an interval and how many fit at once.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    interval_us: u64,
    burst: u32,
}

impl Gcra {
    fn of(limit: &Limit) -> Gcra {
        let interval = limit.rate.per / limit.rate.count.get();
        Gcra {
            // Below a microsecond (more than a million a second) counts as one.
            interval_us: u64::try_from(interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            burst: limit.burst.unwrap_or(limit.rate.count).get(),
        }
    }
}

/// A bucket a request falls under, and how to name it if it refuses.
struct Bucket {
    key: String,
    gcra: Gcra,
    limit: &'static str,
    label: &'static str,
    scope: Option<String>,
}

/// Why a shared check did not admit.
pub(super) enum Denial {
    /// A bucket is empty.
    Limit(Refusal),
    /// Redis did not answer and `on_redis_error` is `closed`.
    StoreUnavailable,
}

/// The shared buckets of one configuration.
pub(super) struct Shared {
    redis: Arc<Redis>,
    script: redis::Script,
    global: Option<Gcra>,
    per_principal: Option<Gcra>,
    per_upstream: HashMap<String, Gcra>,
    /// Glob, its digest for the key, the bucket shape.
    per_tool: Vec<(Pattern, String, Gcra)>,
    on_error: FailMode,
    /// Set while Redis is failing, so the outage is logged once.
    outage: AtomicBool,
    /// While Redis is failing: when (ms after `epoch`, never 0) it is asked again. 0 when it
    /// is not failing.
    retry_at: AtomicU64,
    epoch: Instant,
}

/// The first 16 bytes of a SHA-256, in hex.
fn digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..16]
        .iter()
        .fold(String::with_capacity(32), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

impl Shared {
    pub(super) fn new(config: &Config, redis: Arc<Redis>) -> Shared {
        let limits = &config.rate_limits;
        Shared {
            redis,
            script: redis::Script::new(SCRIPT),
            global: limits.global.as_ref().map(Gcra::of),
            per_principal: limits.per_principal.as_ref().map(Gcra::of),
            per_upstream: limits
                .per_upstream
                .iter()
                .map(|(name, l)| (name.clone(), Gcra::of(l)))
                .collect(),
            per_tool: limits
                .per_tool
                .iter()
                .map(|(glob, l)| (glob.clone(), digest(&[glob.as_str()]), Gcra::of(l)))
                .collect(),
            on_error: limits.on_redis_error,
            outage: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The buckets a request falls under, most specific first (the order of the local
    /// check, which also breaks ties when two buckets would refuse for as long).
    fn buckets(
        &self,
        (method, subject): (AuthMethod, &str),
        routed: Option<&Routed<'_>>,
    ) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        let key = |rest: String| self.redis.key(&format!("rl:{rest}"));
        if let Some(gcra) = self.per_principal {
            buckets.push(Bucket {
                key: key(format!("principal:{}", digest(&[method.as_str(), subject]))),
                gcra,
                limit: "per_principal",
                label: "principal",
                scope: Some(subject.to_owned()),
            });
        }
        if let Some(routed) = routed {
            if let Some(tool) = routed.tool {
                for (_, tag, gcra) in self.per_tool.iter().filter(|(g, _, _)| g.matches(tool)) {
                    buckets.push(Bucket {
                        key: key(format!("tool:{tag}:{tool}")),
                        gcra: *gcra,
                        limit: "per_tool",
                        label: "tool",
                        scope: Some(tool.to_owned()),
                    });
                }
            }
            if let Some(gcra) = self.per_upstream.get(routed.upstream_name) {
                buckets.push(Bucket {
                    key: key(format!("upstream:{}", routed.upstream_name)),
                    gcra: *gcra,
                    limit: "per_upstream",
                    label: "upstream",
                    scope: Some(routed.upstream_name.to_owned()),
                });
            }
        }
        if let Some(gcra) = self.global {
            buckets.push(Bucket {
                key: key("global".to_owned()),
                gcra,
                limit: "global",
                label: "global",
                scope: None,
            });
        }
        buckets
    }

    /// Runs the script: `Ok(None)` when every bucket admitted and was charged, else the
    /// index of the bucket that refuses longest and how long.
    async fn charge(&self, buckets: &[Bucket]) -> Result<Option<(usize, Duration)>, RedisFault> {
        let mut call = self.script.prepare_invoke();
        for bucket in buckets {
            call.key(&bucket.key)
                .arg(bucket.gcra.interval_us)
                .arg(bucket.gcra.burst);
        }
        let (index, wait_us): (usize, u64) = self.redis.run_script(&call).await?;
        Ok(match index {
            0 => None,
            i => Some((i - 1, Duration::from_micros(wait_us))),
        })
    }

    /// Checks (and charges) every bucket the request falls under; on a Redis fault, the
    /// configured failure mode.
    pub(super) async fn check(
        &self,
        who: (AuthMethod, &str),
        routed: Option<&Routed<'_>>,
        metrics: &Metrics,
    ) -> Result<(), Denial> {
        let mut buckets = self.buckets(who, routed);
        if buckets.is_empty() {
            return Ok(());
        }
        if self.holding_off() {
            return self.fail(metrics);
        }
        match self.charge(&buckets).await {
            Ok(verdict) => {
                if self.retry_at.load(Ordering::Relaxed) != 0 {
                    self.retry_at.store(0, Ordering::Relaxed);
                }
                if self.outage.load(Ordering::Relaxed) && self.outage.swap(false, Ordering::AcqRel)
                {
                    tracing::info!("Shared rate-limit store answering again: shared limits apply");
                }
                let Some((i, wait)) = verdict else {
                    return Ok(());
                };
                let Some(bucket) = (i < buckets.len()).then(|| buckets.swap_remove(i)) else {
                    // The script named no bucket of ours: only a broken script could.
                    return self.fault(
                        RedisFault(format!("rate-limit script named bucket {i}")),
                        metrics,
                    );
                };
                Err(Denial::Limit(Refusal {
                    limit: bucket.limit,
                    label: bucket.label,
                    scope: bucket.scope,
                    wait,
                }))
            }
            Err(fault) => self.fault(fault, metrics),
        }
    }

    /// Milliseconds since `epoch`, from 1.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Whether Redis is to be left alone now. When a hold-off has just passed, one caller
    /// wins the right to ask Redis (and moves the next try on for the others).
    fn holding_off(&self) -> bool {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        if retry_at == 0 {
            return false;
        }
        let now = self.now_ms();
        if now < retry_at {
            return true;
        }
        let next = now + HOLD_OFF.as_millis() as u64;
        self.retry_at
            .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }

    /// A request Redis did not check: the failure mode, counted.
    fn fail(&self, metrics: &Metrics) -> Result<(), Denial> {
        if self.on_error == FailMode::Closed {
            metrics.rate_limit_store_error("refused");
            Err(Denial::StoreUnavailable)
        } else {
            metrics.rate_limit_store_error("admitted");
            Ok(())
        }
    }

    fn fault(&self, fault: RedisFault, metrics: &Metrics) -> Result<(), Denial> {
        self.retry_at.store(
            self.now_ms() + HOLD_OFF.as_millis() as u64,
            Ordering::Release,
        );
        let refuse = self.on_error == FailMode::Closed;
        if !self.outage.swap(true, Ordering::AcqRel) {
            if refuse {
                tracing::warn!(error = %fault, "Shared rate-limit store unavailable: refusing requests that a shared limit applies to until Redis answers (rate_limits.on_redis_error: closed)");
            } else {
                tracing::warn!(error = %fault, "Shared rate-limit store unavailable: admitting requests without their shared limits until Redis answers (rate_limits.on_redis_error: open)");
            }
        }
        self.fail(metrics)
    }
}

/// The refusal of `on_redis_error: closed`: a -32015 like a reached limit (so clients back
/// off the same way), saying the store is unavailable and nothing about where it is.
pub(super) fn store_unavailable() -> ErrorObject {
    ErrorObject::new(
        codes::RATE_LIMITED,
        "Rate limit not checked: the shared rate-limit store is unavailable, and requests are \
         refused until it answers (rate_limits.on_redis_error: closed); retry after 1 s",
    )
    .with_data(json!({
        "limit": "store_unavailable",
        "retryAfterSeconds": 1,
        "retryAfterMs": 1000,
    }))
}

#[cfg(test)]
mod tests;

//! Rate limits (governor token buckets) and per-upstream concurrency caps.
//!
//! Which requests count:
//! - `per_principal` and `global`: every request (`initialize` and listings included).
//! - `per_tool` (by glob over exposed tool names, one bucket per tool) and `per_upstream`:
//!   only requests routed to an upstream (`tools/call`, `prompts/get`, `resources/read`,
//!   `completion/complete`).
//!
//! Buckets are checked from the most specific to the most shared (principal, tool,
//! upstream, global), so a request refused by its own principal's bucket spends nothing of
//! what everybody shares. (A token taken by an earlier bucket is not given back when a later
//! one refuses: governor has no refunds.)
//!
//! A refusal is error -32015 whose `data` says which limit and when to retry
//! (`retryAfterSeconds`, `retryAfterMs`); the HTTP face answers it with 429 and
//! `Retry-After`. Refusals happen before admission only: nothing already admitted is dropped.
//!
//! With a shared `redis` and `rate_limits.scope: shared` (the default once `redis` is set),
//! the same buckets are counted in Redis instead, across every replica (`shared.rs`): same
//! keys, same refusal, and a request refused by one bucket spends nothing of the others.
//! Without `redis`, or with `scope: replica`, the buckets are this process's (governor).
//!
//! The concurrency cap (`upstreams.X.max_concurrency`) holds a slot from admission until the
//! routed call returns; a request waits for a slot at most the upstream's timeout (the tool's
//! own, if it has one), then fails with -32012.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, RateLimiter};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use crate::config::rate_limits::{Limit, Rate, RateLimitConfig};
/// A clock tests advance by hand (see [`crate::pipeline::Hooks`]).
pub use governor::clock::FakeRelativeClock;

use super::metrics::Metrics;
use super::{DynStage, Hooks, Next, Outcome, RequestContext, Stage};
use crate::config::auth::AuthMethod;
use crate::config::rate_limits::Scope;
use crate::config::{Config, Pattern};
use crate::net::redis::Redis;
use crate::protocol::{Era, ErrorObject, Request, codes};
use crate::upstream::{Upstream, Upstreams};

mod shared;

/// Keyed buckets are pruned of idle keys (full buckets, indistinguishable from new ones)
/// once every this many checks, so subjects that come and go do not grow memory for ever.
const PRUNE_EVERY: u64 = 1024;

type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;
/// A principal's bucket key: how it authenticated and its subject, so an API key named `ci`
/// and a JWT user whose subject is `ci` never share (or drain) one bucket.
type PrincipalKey = (AuthMethod, String);

/// The stage exists when a bucket is configured or an upstream has a concurrency cap. Its
/// buckets are counted in `redis` when one is given and `rate_limits.scope` is `shared`.
pub fn stage(
    config: &Config,
    metrics: &Arc<Metrics>,
    upstreams: &Arc<Upstreams>,
    hooks: &Hooks,
    redis: Option<&Arc<Redis>>,
) -> Option<Arc<dyn DynStage>> {
    let capped = config.upstreams.iter().any(|u| u.max_concurrency.is_some());
    if config.rate_limits.is_empty() && !capped {
        return None;
    }
    let shared = match (redis, config.rate_limits.scope) {
        (Some(redis), Scope::Shared) if !config.rate_limits.is_empty() => {
            Some(shared::Shared::new(config, redis.clone()))
        }
        _ => None,
    };
    Some(match &hooks.rate_limit_clock {
        Some(clock) => Arc::new(Limiting {
            limits: RateLimits::new(config, clock.clone()),
            shared,
            upstreams: upstreams.clone(),
            metrics: metrics.clone(),
        }),
        None => Arc::new(Limiting {
            limits: RateLimits::new(config, DefaultClock::default()),
            shared,
            upstreams: upstreams.clone(),
            metrics: metrics.clone(),
        }),
    })
}

/// The stage: the limits, and where it finds a request's owner and counts refusals.
struct Limiting<C: Clock> {
    /// The local buckets (unused while `shared` is set) and the concurrency slots.
    limits: RateLimits<C>,
    /// The buckets counted in Redis, when they are shared.
    shared: Option<shared::Shared>,
    upstreams: Arc<Upstreams>,
    metrics: Arc<Metrics>,
}

/// Every bucket and semaphore, over the clock `C`.
pub struct RateLimits<C: Clock> {
    clock: C,
    global: Option<Direct<C>>,
    per_principal: Option<Keyed<PrincipalKey, C>>,
    /// By upstream name (indexes change when a reload replaces an upstream).
    per_upstream: HashMap<String, Direct<C>>,
    per_tool: Vec<(Pattern, Keyed<String, C>)>,
    /// By upstream name: the slots of capped upstreams.
    slots: HashMap<String, Arc<Semaphore>>,
    checks: AtomicU64,
}

/// Why a bucket refused, for the error and the metric.
#[derive(Debug)]
struct Refusal {
    /// The config key: `global`, `per_principal`, `per_upstream` or `per_tool`.
    limit: &'static str,
    /// The metric label: `global`, `principal`, `upstream` or `tool`.
    label: &'static str,
    /// Whose bucket (a subject, an upstream, a tool), for the message.
    scope: Option<String>,
    wait: Duration,
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn new(config: &Config, clock: C) -> Self {
        let limits = &config.rate_limits;
        let direct = |l: &Limit| RateLimiter::direct_with_clock(l.quota(), clock.clone());
        RateLimits {
            global: limits.global.as_ref().map(direct),
            per_principal: limits
                .per_principal
                .as_ref()
                .map(|l| RateLimiter::dashmap_with_clock(l.quota(), clock.clone())),
            per_upstream: config
                .upstreams
                .iter()
                .filter_map(|u| Some((u.name.clone(), direct(limits.per_upstream.get(&u.name)?))))
                .collect(),
            per_tool: limits
                .per_tool
                .iter()
                .map(|(glob, l)| {
                    let limiter = RateLimiter::dashmap_with_clock(l.quota(), clock.clone());
                    (glob.clone(), limiter)
                })
                .collect(),
            slots: config
                .upstreams
                .iter()
                .filter_map(|u| {
                    Some((u.name.clone(), Arc::new(Semaphore::new(u.max_concurrency?))))
                })
                .collect(),
            checks: AtomicU64::new(0),
            clock,
        }
    }
}

impl<C: Clock> RateLimits<C> {
    fn wait(&self, not_until: &NotUntil<C::Instant>) -> Duration {
        not_until.wait_time_from(self.clock.now())
    }

    /// Checks the buckets in order; the first refusal wins.
    fn check(
        &self,
        (method, subject): (AuthMethod, &str),
        routed: Option<&Routed<'_>>,
    ) -> Result<(), Refusal> {
        let refusal = |limit, label, scope: Option<&str>, wait| Refusal {
            limit,
            label,
            scope: scope.map(str::to_owned),
            wait,
        };
        if let Some(limiter) = &self.per_principal {
            let key = (method, subject.to_owned());
            limiter
                .check_key(&key)
                .map_err(|n| refusal("per_principal", "principal", Some(subject), self.wait(&n)))?;
        }
        if let Some(routed) = routed {
            if let Some(tool) = routed.tool {
                let key = tool.to_owned();
                for (_, limiter) in self.per_tool.iter().filter(|(g, _)| g.matches(tool)) {
                    limiter
                        .check_key(&key)
                        .map_err(|n| refusal("per_tool", "tool", Some(tool), self.wait(&n)))?;
                }
            }
            if let Some(limiter) = self.per_upstream.get(routed.upstream_name) {
                limiter.check().map_err(|n| {
                    refusal(
                        "per_upstream",
                        "upstream",
                        Some(routed.upstream_name),
                        self.wait(&n),
                    )
                })?;
            }
        }
        if let Some(limiter) = &self.global {
            limiter
                .check()
                .map_err(|n| refusal("global", "global", None, self.wait(&n)))?;
        }
        Ok(())
    }

    fn prune(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY != PRUNE_EVERY - 1 {
            return;
        }
        if let Some(limiter) = &self.per_principal {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for (_, limiter) in &self.per_tool {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Where a routed request goes.
struct Routed<'a> {
    upstream_name: &'a str,
    /// For `tools/call`: the exposed name (per-tool buckets) and the upstream's own name
    /// (per-tool timeouts).
    tool: Option<&'a str>,
    original: Option<String>,
}

/// The upstream a request goes to (see `pipeline::owner`), and the upstream's own name of
/// the tool it calls.
fn target(
    upstreams: &Upstreams,
    era: Era,
    req: &Request,
) -> Option<(Arc<Upstream>, Option<String>)> {
    let owner = super::owner::owner(upstreams, era, req)?;
    Some((upstreams.at(owner.upstream), owner.tool))
}

/// What the buckets look at, borrowed from the request and its target.
fn routed<'r>(upstream: &'r Upstream, original: Option<String>, req: &'r Request) -> Routed<'r> {
    let tool = original
        .is_some()
        .then(|| req.param("name").and_then(Value::as_str))
        .flatten();
    Routed {
        upstream_name: upstream.name(),
        tool,
        original,
    }
}

fn rate_limited(refusal: &Refusal) -> ErrorObject {
    // Whole seconds for `Retry-After`, rounded up and never 0: "now" would invite a retry
    // that is certain to fail.
    let ms = refusal.wait.as_millis().max(1);
    let secs = refusal.wait.as_secs() + u64::from(refusal.wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let whose = refusal
        .scope
        .as_deref()
        .map_or_else(String::new, |s| format!(" for {s}"));
    ErrorObject::new(
        codes::RATE_LIMITED,
        format!(
            "Rate limit exceeded ({}{whose}); retry after {secs} s",
            refusal.limit
        ),
    )
    .with_data(json!({
        "limit": refusal.limit,
        "retryAfterSeconds": secs,
        "retryAfterMs": ms as u64,
    }))
}

impl<C> Stage for Limiting<C>
where
    C: Clock + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        let limits = &self.limits;
        let target = target(&self.upstreams, ctx.era(), req);
        let routed = target
            .as_ref()
            .map(|(upstream, original)| routed(upstream, original.clone(), req));
        let principal = ctx.principal();
        let who = (principal.method, principal.subject.as_str());
        let checked = match &self.shared {
            Some(shared) => match shared.check(who, routed.as_ref(), &self.metrics).await {
                Ok(()) => Ok(()),
                Err(shared::Denial::Limit(refusal)) => Err(refusal),
                Err(shared::Denial::StoreUnavailable) => return Err(shared::store_unavailable()),
            },
            None => {
                limits.prune();
                limits.check(who, routed.as_ref())
            }
        };
        if let Err(refusal) = checked {
            self.metrics.rate_limited(refusal.label);
            tracing::debug!(limit = refusal.limit, subject = %ctx.principal().subject, wait = ?refusal.wait, "Rate limited");
            return Err(rate_limited(&refusal));
        }
        let slots = routed
            .as_ref()
            .and_then(|r| Some((r, limits.slots.get(r.upstream_name)?.clone())));
        let Some((routed, slots)) = slots else {
            return next.run(ctx, req).await;
        };
        let Some((target, _)) = &target else {
            return next.run(ctx, req).await;
        };
        let upstream = &target.config;
        let patience = match &routed.original {
            Some(tool) => super::timeout::for_tool(upstream, tool),
            None => upstream.timeout,
        };
        // Past the buckets the request is admitted: the HTTP answer can open its stream (with
        // keep-alives) while the request waits for a slot, and "busy" is an ordinary error,
        // not a refusal with a status of its own.
        ctx.admit();
        // Held until the routed call returns (or is dropped).
        let _permit = match tokio::time::timeout(patience, slots.acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                self.metrics.rate_limited("concurrency");
                return Err(busy(
                    routed.upstream_name,
                    upstream.max_concurrency,
                    patience,
                ));
            }
        };
        next.run(ctx, req).await
    }
}

fn busy(upstream: &str, cap: Option<usize>, waited: Duration) -> ErrorObject {
    ErrorObject::new(
        codes::GATEWAY_BUSY,
        format!(
            "Upstream '{upstream}' busy: {} requests already in flight, no slot freed within {waited:?}",
            cap.unwrap_or_default()
        ),
    )
    .with_data(json!({ "upstream": upstream, "source": "gateway", "limit": "concurrency" }))
}

#[cfg(test)]
mod tests;

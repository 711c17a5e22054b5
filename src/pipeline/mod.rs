//! The middleware pipeline every client request walks before it is routed, and whose result
//! or error walks back out through the same stages. Every downstream transport calls
//! [`Pipeline::handle`]; `initialize` included (initialization is not a back door around the
//! stages).
//!
//! Stage order, outermost first, and why each sits where it does (`Pipeline::build` is the
//! only place that order is written in code):
//!
//! 1. `trace`: the OpenTelemetry SERVER span, opened first so every later stage's logs,
//!    refusals and the upstream CLIENT span are inside it, and the client's trace context
//!    is adopted before anything else happens.
//! 2. `metrics`: counts and times every request, refusals by the stages below included, so
//!    a burst of 429s or 403s shows on `/metrics` as well as successes.
//! 3. `audit`: one line per tool call, prompt get and resource read with its outcome; outside
//!    the refusing stages so that denials and rate-limit hits are audited too.
//! 4. `auth`: the caller's identity (verified by the transport from its credentials) is
//!    bound to the session at `initialize` and checked on every later request, so a session
//!    id alone is not a credential.
//! 5. `policy`: allow/deny by principal, claim or scope; filters listings on the way out.
//!    Before rate limits, so a denied request spends no budget and per-tool limits never
//!    reveal a tool the caller may not see.
//! 6. `rate_limit`: global, per-principal, per-upstream and per-tool token buckets and the
//!    per-upstream concurrency cap. Last of the admission stages: only requests that will
//!    really be routed consume capacity.
//! 7. `tasks`: task-result wrapping. A call that should run as a task (the client asked, or
//!    a 2026-07-28 client waited past `tasks.threshold`) is started in the background with
//!    the rest of the chain and answered at once with the task; a task an upstream creates
//!    itself gets a gateway id. After the admission stages, so a task is admitted (and
//!    counted) once, when it is created; before `timeout`, which then bounds the background
//!    call rather than the client's wait.
//! 8. `timeout`: the deadline for the upstream (per tool, else per upstream), handed to the
//!    upstream connection, which answers -32011 and sends `notifications/cancelled` upstream
//!    when it passes. Innermost, so time spent waiting in earlier stages is not charged to
//!    the upstream.
//! 9. the router (`crate::router`): resolves the owner and forwards.
//!
//! A stage is a module with one job, its own config section and its own tests. Adding one
//! means adding it to `Pipeline::build`; the router and the transports do not change.

pub mod audit;
pub mod auth;
mod context;
pub mod metrics;
pub mod owner;
pub mod policy;
pub mod rate_limit;
pub mod timeout;
pub mod trace;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

pub use context::{Caller, RequestContext, TraceHeaders};

use crate::config::Config;
use crate::gateway::Gateway;
use crate::protocol::{ErrorObject, Request};

/// What a request comes back with: the result, or the error the client will see.
pub type Outcome = Result<Value, ErrorObject>;

/// One middleware stage. It may answer the request itself (a refusal), or pass it on with
/// `next.run(..)` and look at (or rewrite) what comes back.
pub trait Stage: Send + Sync + 'static {
    /// The stage's name, as in the module list above and in logs.
    fn name(&self) -> &'static str;

    fn handle<'a>(
        &'a self,
        gateway: &'a Gateway,
        ctx: &'a mut RequestContext,
        req: &'a Request,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome>;
}

/// The rest of the chain after the current stage.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Stage>],
}

impl<'a> Next<'a> {
    /// Runs the remaining stages, then the router.
    pub async fn run(
        self,
        gateway: &'a Gateway,
        ctx: &'a mut RequestContext,
        req: &'a Request,
    ) -> Outcome {
        match self.rest.split_first() {
            Some((stage, rest)) => stage.handle(gateway, ctx, req, Next { rest }).await,
            None => {
                ctx.admit();
                match ctx.cancel.clone() {
                    None => crate::router::route(gateway, ctx, req).await,
                    Some(token) => tokio::select! {
                        outcome = crate::router::route(gateway, ctx, req) => outcome,
                        _ = token.cancelled() => {
                            tracing::debug!(method = %req.method, id = %req.id, "Cancelled by the client");
                            Err(crate::downstream::exchange::cancelled())
                        }
                    },
                }
            }
        }
    }
}

impl Next<'_> {
    /// The rest of the chain as an owned value, to run the request later or elsewhere (a
    /// call the tasks stage runs in the background).
    pub fn chain(&self) -> Chain {
        Chain {
            rest: self.rest.to_vec(),
        }
    }
}

/// An owned rest-of-chain (see [`Next::chain`]).
#[derive(Clone)]
pub struct Chain {
    rest: Vec<Arc<dyn Stage>>,
}

impl Chain {
    pub async fn run(&self, gateway: &Gateway, ctx: &mut RequestContext, req: &Request) -> Outcome {
        Next { rest: &self.rest }.run(gateway, ctx, req).await
    }
}

/// Seams for tests that run the gateway in-process: replacements for what the stages would
/// otherwise take from the system. `Hooks::default()` is production.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The rate limiters' time source; `None` is the real monotonic clock. A test passes a
    /// [`rate_limit::FakeRelativeClock`] and advances it by hand, so "limit reached, then
    /// recovered" is shown without sleeping.
    pub rate_limit_clock: Option<rate_limit::FakeRelativeClock>,
}

/// The ordered stages.
pub struct Pipeline {
    stages: Vec<Arc<dyn Stage>>,
}

impl Pipeline {
    /// The stages the configuration enables, in the documented order.
    pub fn build(config: &Config, metrics: &Arc<metrics::Metrics>, hooks: &Hooks) -> Pipeline {
        let stages: Vec<Option<Arc<dyn Stage>>> = vec![
            trace::stage(&config.telemetry),
            metrics::stage(&config.metrics, metrics),
            audit::stage(&config.audit),
            auth::stage(&config.auth),
            policy::stage(&config.policy),
            rate_limit::stage(config, metrics, hooks),
            crate::tasks::stage::stage(config),
            timeout::stage(config),
        ];
        Pipeline {
            stages: stages.into_iter().flatten().collect(),
        }
    }

    /// The names of the active stages, outermost first (for the startup log and tests).
    pub fn names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Runs one client request through every stage and the router.
    pub async fn handle(
        &self,
        gateway: &Gateway,
        ctx: &mut RequestContext,
        req: &Request,
    ) -> Outcome {
        Next { rest: &self.stages }.run(gateway, ctx, req).await
    }
}

/// Runs one client request through the gateway's pipeline.
pub async fn handle(gateway: &Gateway, ctx: &mut RequestContext, req: &Request) -> Outcome {
    gateway.pipeline.handle(gateway, ctx, req).await
}

/// A prefix of a session id: enough to correlate log lines, not enough to hijack a session.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

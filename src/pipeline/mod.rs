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
//! 9. the terminal: the router, handed to [`Pipeline::build`] by the layer that builds the
//!    gateway. The pipeline never names it (nor the faces that call in): it sits below both.
//!
//! A stage is a module with one job, its own config section and its own tests. Adding one
//! means adding it to `Pipeline::build`; the router and the transports do not change. The
//! tasks stage lives with the rest of tasks (a layer above, since it re-enters the chain) and
//! is handed in like the terminal, to take its place in the order written here.

pub mod audit;
pub mod auth;
mod context;
pub mod metrics;
pub mod owner;
pub mod policy;
pub mod rate_limit;
pub mod timeout;
pub mod trace;

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

pub use context::{Caller, Listed, RequestContext, TraceHeaders};

use crate::config::Config;
use crate::protocol::{ErrorObject, Payload, Request};
use crate::upstream::Upstreams;

/// What a request comes back with: the result (as text until a stage reads it, see
/// [`Payload`]), or the error the client will see.
pub type Outcome = Result<Payload, ErrorObject>;

/// One middleware stage. It may answer the request itself (a refusal), or pass it on with
/// `next.run(ctx, req)` and look at (or rewrite) what comes back. What a stage needs besides
/// the request (the upstream table, its metrics) it is given when it is built.
pub trait Stage: Send + Sync + 'static {
    /// The stage's name, as in the module list above and in logs.
    fn name(&self) -> &'static str;

    fn handle(
        &self,
        ctx: &mut RequestContext,
        req: &Request,
        next: Next<'_>,
    ) -> impl Future<Output = Outcome> + Send;
}

/// The form of a [`Stage`] the chain holds: the same call with its future boxed, so stages
/// of different types sit in one list. Every `Stage` has it; nobody implements it by hand.
pub trait DynStage: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    fn call<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        req: &'a Request,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome>;
}

impl<S: Stage> DynStage for S {
    fn name(&self) -> &'static str {
        Stage::name(self)
    }

    fn call<'a>(
        &'a self,
        ctx: &'a mut RequestContext,
        req: &'a Request,
        next: Next<'a>,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(self.handle(ctx, req, next))
    }
}

/// Where the chain ends: the router, which answers the request or forwards it upstream.
pub trait Terminal: Send + Sync + 'static {
    fn route<'a>(&'a self, ctx: &'a RequestContext, req: &'a Request) -> BoxFuture<'a, Outcome>;
}

/// The rest of the chain after the current stage.
pub struct Next<'a> {
    rest: &'a [Arc<dyn DynStage>],
    terminal: &'a Arc<dyn Terminal>,
}

impl<'a> Next<'a> {
    /// Runs the remaining stages, then the terminal.
    pub async fn run(self, ctx: &'a mut RequestContext, req: &'a Request) -> Outcome {
        let Some((stage, rest)) = self.rest.split_first() else {
            return end(self.terminal, ctx, req).await;
        };
        let next = Next {
            rest,
            terminal: self.terminal,
        };
        stage.call(ctx, req, next).await
    }

    /// The rest of the chain as an owned value, to run the request later or elsewhere (a
    /// call the tasks stage runs in the background).
    pub fn chain(&self) -> Chain {
        Chain {
            rest: self.rest.to_vec(),
            terminal: self.terminal.clone(),
        }
    }
}

/// The end of the chain: the request is admitted and routed.
async fn end(terminal: &Arc<dyn Terminal>, ctx: &mut RequestContext, req: &Request) -> Outcome {
    answer(ctx, req, |ctx| terminal.route(ctx, req)).await
}

/// Where a request stops walking the chain and gets its answer (the terminal, or a stage that
/// serves a method itself): the request is admitted, and answered by `answer` unless the
/// client cancels it first. Then it is -32013, given inside the chain, so the outer stages
/// trace, count and audit the cancellation like any other outcome.
pub async fn answer<'c, F>(
    ctx: &'c mut RequestContext,
    req: &Request,
    answer: impl FnOnce(&'c RequestContext) -> F,
) -> Outcome
where
    F: Future<Output = Outcome>,
{
    ctx.admit();
    let ctx: &'c RequestContext = ctx;
    let Some(token) = ctx.cancel.clone() else {
        return answer(ctx).await;
    };
    tokio::select! {
        outcome = answer(ctx) => outcome,
        _ = crate::sync::cancelled(&token) => {
            tracing::debug!(method = %req.method, id = %req.id, "Cancelled by the client");
            Err(ErrorObject::cancelled())
        }
    }
}

/// An owned rest-of-chain (see [`Next::chain`]).
#[derive(Clone)]
pub struct Chain {
    rest: Vec<Arc<dyn DynStage>>,
    terminal: Arc<dyn Terminal>,
}

impl Chain {
    pub async fn run(&self, ctx: &mut RequestContext, req: &Request) -> Outcome {
        let next = Next {
            rest: &self.rest,
            terminal: &self.terminal,
        };
        next.run(ctx, req).await
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

/// What the stages are built from besides the configuration: the handles they keep, and the
/// two parts from the layers above (the tasks stage and the terminal).
pub struct Parts {
    pub upstreams: Arc<Upstreams>,
    pub metrics: Arc<metrics::Metrics>,
    pub hooks: Hooks,
    /// The Redis replicas share (`redis`), for stages that count across replicas.
    pub redis: Option<Arc<crate::net::redis::Redis>>,
    /// The tasks stage, put in its place in the order.
    pub tasks: Arc<dyn DynStage>,
    /// The router.
    pub terminal: Arc<dyn Terminal>,
}

/// The ordered stages, and the terminal they lead to.
pub struct Pipeline {
    stages: Vec<Arc<dyn DynStage>>,
    terminal: Arc<dyn Terminal>,
}

impl Pipeline {
    /// The stages the configuration enables, in the documented order.
    pub fn build(config: &Config, parts: Parts) -> Pipeline {
        let Parts {
            upstreams,
            metrics,
            hooks,
            redis,
            tasks,
            terminal,
        } = parts;
        let stages: Vec<Option<Arc<dyn DynStage>>> = vec![
            trace::stage(&config.telemetry),
            metrics::stage(&config.metrics, &metrics, &upstreams),
            audit::stage(&config.audit, &upstreams),
            auth::stage(&config.auth),
            policy::stage(&config.policy, &upstreams),
            rate_limit::stage(config, &metrics, &upstreams, &hooks, redis.as_ref()),
            Some(tasks),
            timeout::stage(&upstreams),
        ];
        Pipeline {
            stages: stages.into_iter().flatten().collect(),
            terminal,
        }
    }

    /// The names of the active stages, outermost first (for the startup log and tests).
    pub fn names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Runs one client request through every stage and the terminal.
    pub async fn handle(&self, ctx: &mut RequestContext, req: &Request) -> Outcome {
        let next = Next {
            rest: &self.stages,
            terminal: &self.terminal,
        };
        next.run(ctx, req).await
    }
}

/// A prefix of a session id: enough to correlate log lines, not enough to hijack a session.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

//! The pipeline stage that decides, for each call, read and prompt, whether it runs as a
//! task and who runs it:
//!
//! | client | asks for a task when | upstream runs tasks in the client's era | otherwise |
//! |---|---|---|---|
//! | 2025-11-25 | `params.task` is set | passthrough, id mapped | the gateway wraps it |
//! | 2026-07-28 | it declares the extension (tools only) | passthrough, upstream decides | wrapped: `always` at once, `on_request` past `tasks.threshold` |
//!
//! `tasks: never` (per upstream or tool glob) keeps a call synchronous: a 2025-11-25 tool
//! call asking for a task gets -32601 (its listing says `forbidden`), a prompt or read is
//! simply served. `always` makes a tool a task for everyone who can take one: 2025-11-25
//! calls without `task` get -32601 (listed `required`), 2026-07-28 clients without the
//! extension get -32021.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::runner::{self, Start};
use super::{Tasks, passthrough};
use crate::config::TaskMode;
use crate::pipeline::{Next, Outcome, RequestContext, Stage};
use crate::protocol::envelope::Envelope;
use crate::protocol::{Era, ErrorObject, Request, codes, extensions, methods};
use crate::upstream::tasks::OwnTasks;

/// The stage (see the module docs); it also answers the task methods.
pub struct TaskStage(pub Arc<Tasks>);

impl Stage for TaskStage {
    fn name(&self) -> &'static str {
        "tasks"
    }

    async fn handle(&self, ctx: &mut RequestContext, req: &Request, next: Next<'_>) -> Outcome {
        let tasks = &self.0;
        if methods::TASK_METHODS.contains(&req.method.as_str()) {
            if ctx.era() == Era::Stateless {
                offered(tasks, &req.method)?;
            }
            // Served here, never routed: the request has passed every admission stage. Boxed,
            // as are the task paths below: inline, each would size (and cost a copy of) the
            // future of every call that passes through (6 KB against 0.5 KB).
            return Box::pin(crate::pipeline::answer(ctx, req, |ctx| {
                super::methods::handle(tasks, ctx, req)
            }))
            .await;
        }
        if !methods::TASK_CAPABLE.contains(&req.method.as_str()) {
            return next.run(ctx, req).await;
        }
        // A name nobody serves: the router says so.
        let Some(owner) = crate::pipeline::owner::owner(&tasks.upstreams, ctx.era(), req) else {
            return next.run(ctx, &without_task(req)).await;
        };
        if ctx.era() == Era::Stateless {
            stateless(tasks, ctx, req, next, owner).await
        } else {
            handshake(tasks, ctx, req, next, owner).await
        }
    }
}

/// A 2026-07-28 client may call a task method only while the gateway offers the tasks
/// extension (what `server/discover` says and what is served must agree).
fn offered(tasks: &Tasks, method: &str) -> Result<(), ErrorObject> {
    let gated = matches!(
        method,
        methods::TASKS_GET | methods::TASKS_UPDATE | methods::TASKS_CANCEL
    );
    if !gated || tasks.upstreams.task_servable().0 {
        return Ok(());
    }
    Err(ErrorObject::method_not_found(method)
        .with_data(json!({ "reason": "no tool can run as a task (tasks: never everywhere)" })))
}

/// A 2025-11-25 (or older) client: a task exactly when `params.task` says so.
async fn handshake(
    tasks: &Tasks,
    ctx: &mut RequestContext,
    req: &Request,
    next: Next<'_>,
    owner: crate::pipeline::owner::Owner,
) -> Outcome {
    let upstream = &tasks.upstreams.at(owner.upstream);
    let name = owner.tool.as_deref();
    let mode = upstream.config.task_mode(&req.method, name);
    let is_tool = req.method == methods::TOOLS_CALL;
    let Some(task) = req.param("task") else {
        if is_tool && mode == TaskMode::Always {
            return Err(ErrorObject::new(
                codes::METHOD_NOT_FOUND,
                format!(
                    "tool {} runs only as a task: call it with params.task (its taskSupport is required)",
                    req.str_param("name")?
                ),
            ));
        }
        return next.run(ctx, req).await;
    };
    let Some(task) = task.as_object() else {
        return Err(ErrorObject::invalid_params("'task' must be an object"));
    };
    let ttl = match task.get("ttl") {
        None | Some(Value::Null) => None,
        Some(ttl) => Some(ttl.as_u64().ok_or_else(|| {
            ErrorObject::invalid_params("'task.ttl' must be a non-negative integer (milliseconds)")
        })?),
    };
    if mode == TaskMode::Never {
        if is_tool {
            return Err(ErrorObject::new(
                codes::METHOD_NOT_FOUND,
                format!(
                    "tool {} does not run as a task (its taskSupport is forbidden)",
                    req.str_param("name")?
                ),
            ));
        }
        // Receivers that do not run a request type as a task serve it normally.
        return next.run(ctx, &without_task(req)).await;
    }
    if upstream.own_tasks(Era::Handshake, &req.method, name) != OwnTasks::No {
        return upstream_runs_it(tasks, ctx, req, next, owner.upstream).await;
    }
    let start = Start {
        upstream: owner.upstream,
        ttl_ms: tasks.config.ttl_ms(ttl),
        immediately: true,
        upstream_task: false,
    };
    gateway_runs_it(tasks, ctx, without_task(req).into_owned(), &next, start).await
}

/// A 2026-07-28 client: server-directed tasks for `tools/call`, only when the request
/// declares the extension.
async fn stateless(
    tasks: &Tasks,
    ctx: &mut RequestContext,
    req: &Request,
    next: Next<'_>,
    owner: crate::pipeline::owner::Owner,
) -> Outcome {
    // A stray 2025-11-25 `task` param is tolerated and means nothing (SEP-2663).
    let req = without_task(req);
    let upstream = &tasks.upstreams.at(owner.upstream);
    let declared = ctx
        .envelope
        .as_ref()
        .is_some_and(|e| extensions::declares(&e.client_capabilities, extensions::TASKS));
    if req.method != methods::TOOLS_CALL {
        if declared {
            hide_extension(ctx);
        }
        return next.run(ctx, &req).await;
    }
    let mode = upstream
        .config
        .task_mode(&req.method, owner.tool.as_deref());
    // A 2025-11-25 upstream that runs this tool as a task of its own: the gateway drives
    // that task for the 2026-07-28 client (a tool it requires as a task has no other way).
    let own = upstream.own_tasks(Era::Stateless, &req.method, owner.tool.as_deref());
    let upstream_task = own != OwnTasks::No;
    let upstream_requires = own == OwnTasks::Required;
    if !declared {
        if mode == TaskMode::Always || upstream_requires {
            return Err(ErrorObject::missing_capability(
                json!({ "extensions": { extensions::TASKS: {} } }),
                format!(
                    "tool {} runs only as a task; declare the {} extension",
                    req.str_param("name")?,
                    extensions::TASKS
                ),
            ));
        }
        return next.run(ctx, &req).await;
    }
    if mode == TaskMode::Never && !upstream_requires {
        hide_extension(ctx);
        return next.run(ctx, &req).await;
    }
    if upstream.offers_task_extension() {
        return upstream_runs_it(tasks, ctx, &req, next, owner.upstream).await;
    }
    // The upstream does not run tasks for this client: the gateway does, and the upstream
    // is not told about an extension it would not understand.
    hide_extension(ctx);
    let start = Start {
        upstream: owner.upstream,
        ttl_ms: tasks.config.ttl_ms(None),
        // The upstream's own task exists from the first moment: so does the client's.
        immediately: mode == TaskMode::Always || upstream_task,
        upstream_task,
    };
    gateway_runs_it(tasks, ctx, req.into_owned(), &next, start).await
}

/// The gateway runs the task, on the rest of the chain. A plain function returning the
/// boxed future, so the caller's future holds a pointer, not the runner's (see
/// [`TaskStage`]'s `handle`).
fn gateway_runs_it<'a>(
    tasks: &'a Tasks,
    ctx: &'a mut RequestContext,
    req: Request,
    next: &Next<'_>,
    start: Start,
) -> BoxFuture<'a, Outcome> {
    Box::pin(runner::start(tasks, ctx, req, next.chain(), start))
}

/// The upstream runs the task: the call goes on to it, and the task it creates is adopted
/// (boxed, as the other task paths: see [`TaskStage`]'s `handle`).
async fn upstream_runs_it(
    tasks: &Tasks,
    ctx: &mut RequestContext,
    req: &Request,
    next: Next<'_>,
    upstream: usize,
) -> Outcome {
    let created = next.run(ctx, req).await?;
    Box::pin(passthrough::adopt(
        tasks,
        ctx,
        upstream,
        &req.method,
        created,
    ))
    .await
}

/// The request without a 2025-11-25 `task` param (what goes upstream when the gateway, not
/// the upstream, handles the task).
fn without_task(req: &Request) -> Cow<'_, Request> {
    match req.param("task") {
        None => Cow::Borrowed(req),
        Some(_) => {
            let mut owned = req.clone();
            owned.remove_param("task");
            Cow::Owned(owned)
        }
    }
}

/// Drops the tasks extension from what the request declares, so an upstream that would
/// create a task for it does not (the gateway runs the task, or none is wanted).
fn hide_extension(ctx: &mut RequestContext) {
    let Some(envelope) = &ctx.envelope else {
        return;
    };
    let mut capabilities = envelope.client_capabilities.clone();
    if let Some(extensions) = capabilities
        .get_mut("extensions")
        .and_then(Value::as_object_mut)
    {
        extensions.remove(extensions::TASKS);
    }
    ctx.envelope = Some(Arc::new(Envelope {
        client_capabilities: capabilities,
        ..(**envelope).clone()
    }));
}

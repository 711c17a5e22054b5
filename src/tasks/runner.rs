//! Wrapped tasks: the gateway runs the request in the background (the rest of the
//! pipeline, then the router, exactly as if the client were waiting) and keeps its status
//! and outcome in the store.
//!
//! A 2025-11-25 client's task is created at once. A 2026-07-28 client's call becomes a task
//! at once (`always`) or when it has not finished after `tasks.threshold`; one that ends
//! sooner, or asks for input first, is answered as usual, so input gathered by MRTR comes
//! before the task. Inside a task, an upstream's `input_required` makes the task
//! `input_required` with the same requests; `tasks/update` answers them and, once all are
//! answered, the call is retried with the answers and its state, as MRTR would.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Tasks;
use crate::pipeline::{Caller, Chain, Outcome, RequestContext};
use crate::protocol::arguments::Params;
use crate::protocol::envelope::{INPUT_REQUIRED, RESULT_TYPE};
use crate::protocol::{Era, ErrorObject, Message, Notification, Request, codes, methods};
use crate::session::Session;
use crate::session::tasks::record::{Status, TaskRecord, new_id, now_ms};
use crate::session::tasks::store::StoreError;

/// How often a running task looks for a cancellation made on another replica (the memory
/// store wakes it at once).
const CANCEL_CHECK: Duration = Duration::from_millis(500);

/// How a wrapped task starts.
pub struct Start {
    pub upstream: usize,
    pub ttl_ms: u64,
    /// A task at once; otherwise only past `tasks.threshold` (2026-07-28 clients).
    pub immediately: bool,
    /// The upstream runs the call as a 2025-11-25 task of its own, which the gateway
    /// drives (creates, waits on with `tasks/result`, cancels) for a 2026-07-28 client.
    pub upstream_task: bool,
}

/// The request a task runs, with what it needs to run again (a retry after input).
struct Job {
    tasks: Arc<Tasks>,
    chain: Chain,
    req: Request,
    session: Option<Arc<Session>>,
    caller: Caller,
    envelope: Option<Arc<crate::protocol::envelope::Envelope>>,
    deadline: Duration,
    /// Set when the upstream runs the call as its own 2025-11-25 task: the upstream, and
    /// that task's id once created.
    upstream_task: Option<(usize, std::sync::Mutex<Option<String>>)>,
}

impl Job {
    fn spawn(self: &Arc<Self>, params: Params, cancel: CancellationToken) -> JoinHandle<Outcome> {
        let job = self.clone();
        tokio::spawn(async move {
            let mut ctx = job.context();
            ctx.cancel = Some(cancel);
            match &job.upstream_task {
                None => {
                    let req =
                        Request::with_params(job.req.id.clone(), job.req.method.clone(), params);
                    job.chain.run(&mut ctx, &req).await
                }
                Some((upstream, remote)) => {
                    job.upstream_task(&mut ctx, *upstream, remote, params.into_value())
                        .await
                }
            }
        })
    }

    /// The upstream's own task: created on the first run (`params.task` added), then waited
    /// on with `tasks/result`, which carries any input the upstream asks for (MRTR, so a
    /// retry with the answers and `requestState` resumes the same wait).
    async fn upstream_task(
        &self,
        ctx: &mut RequestContext,
        upstream: usize,
        remote: &std::sync::Mutex<Option<String>>,
        params: Option<Value>,
    ) -> Outcome {
        let known = remote.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut wait = json!({});
        let id = match known {
            Some(id) => {
                // A retry after input: its answers and state go with the wait.
                for key in ["inputResponses", "requestState"] {
                    if let Some(value) = params.as_ref().and_then(|p| p.get(key)) {
                        wait[key] = value.clone();
                    }
                }
                id
            }
            None => {
                let mut call = params.unwrap_or_else(|| json!({}));
                call["task"] = json!({ "ttl": self.deadline.as_millis() as u64 });
                let req = Request::new(self.req.id.clone(), self.req.method.clone(), Some(call));
                let created = self.chain.run(ctx, &req).await?;
                let Some(id) = created.pointer("/task/taskId").and_then(Value::as_str) else {
                    // The upstream answered at once after all.
                    return Ok(created);
                };
                *remote.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_owned());
                id.to_owned()
            }
        };
        wait["taskId"] = Value::from(id);
        let req = Request::new(
            self.req.id.clone(),
            methods::TASKS_RESULT,
            Some(wait.clone()),
        );
        // Through the rest of the chain to that very upstream, as a client's call would go
        // (the router's MRTR path carries any input the upstream asks for).
        ctx.route_to = Some(upstream);
        let mut result = self.chain.run(ctx, &req).await?;
        crate::session::tasks::record::strip_related_task(&mut result);
        Ok(result)
    }

    /// Cancels the upstream's own task, if there is one (best effort).
    async fn cancel_upstream_task(&self) {
        let Some((upstream, remote)) = &self.upstream_task else {
            return;
        };
        let Some(id) = remote.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
            return;
        };
        let origin = self.context().origin();
        let cancel = json!({ "taskId": id });
        if let Err(e) = self
            .tasks
            .upstreams
            .at(*upstream)
            .request(origin, methods::TASKS_CANCEL, Some(cancel))
            .await
        {
            tracing::debug!(error = %e.message, "The upstream's task was not cancelled");
        }
    }

    /// The context the job's requests run in: the client's session, principal and envelope,
    /// no response stream, and the task's lifetime as deadline.
    fn context(&self) -> RequestContext {
        let mut ctx = RequestContext::new(self.session.clone(), None, self.caller.clone());
        ctx.envelope = self.envelope.clone();
        ctx.deadline = Some(self.deadline);
        ctx
    }

    /// The era of the client the task is for.
    fn era(&self) -> Era {
        if self.envelope.is_some() {
            Era::Stateless
        } else {
            Era::Handshake
        }
    }
}

/// Starts `req` as a wrapped task (or, for a threshold start, runs it and makes it a task
/// only if it takes too long).
pub async fn start(
    tasks: &Tasks,
    ctx: &mut RequestContext,
    req: Request,
    chain: Chain,
    start: Start,
) -> Outcome {
    let job = Arc::new(Job {
        tasks: tasks.arc(),
        chain,
        session: ctx.session.clone(),
        caller: ctx.caller.clone(),
        envelope: ctx.envelope.clone(),
        deadline: Duration::from_millis(start.ttl_ms),
        upstream_task: start
            .upstream_task
            .then(|| (start.upstream, std::sync::Mutex::new(None))),
        req,
    });
    let now = now_ms();
    let record = TaskRecord {
        id: new_id(),
        owner: super::owner_of(ctx),
        method: job.req.method.clone(),
        upstream: tasks.upstreams.at(start.upstream).name().to_owned(),
        remote: None,
        era: job.era(),
        status: Status::Working,
        status_message: None,
        created_ms: now,
        updated_ms: now,
        ttl_ms: start.ttl_ms,
        poll_ms: tasks.config.poll_ms(),
        result: None,
        error: None,
        input_requests: Map::new(),
        input_responses: Map::new(),
        cancel_requested: false,
    };
    let cancel = CancellationToken::new();
    // Until the task owns the call, a client that goes away takes the call with it.
    let mut unowned = CancelOnDrop(Some(cancel.clone()));
    let mut call = if start.immediately {
        create(tasks, &record).await?;
        job.spawn(job.req.params(), cancel.clone())
    } else {
        let mut call = job.spawn(job.req.params(), cancel.clone());
        let threshold = tasks.config.threshold;
        let client_gone = ctx.cancel.clone().unwrap_or_default();
        tokio::select! {
            joined = &mut call => return joined_outcome(joined),
            _ = client_gone.cancelled() => {
                cancel.cancel();
                return Err(ErrorObject::cancelled());
            }
            _ = tokio::time::sleep(threshold), if !threshold.is_zero() => {}
        }
        if let Err(e) = create(tasks, &record).await {
            // No room for another task: the client keeps waiting for the call instead.
            tracing::debug!(error = %e.message, "Call not made a task");
            return joined_outcome(call.await);
        }
        call
    };
    unowned.0 = None;
    // A call on the client's own upstream link (HTTP, stdio per_session) must outlive the
    // client's session for as long as its task runs.
    let hold = record
        .owner
        .session
        .clone()
        .filter(|_| tasks.upstreams.at(start.upstream).dedicated())
        .map(|session| (session, record.expires_ms()));
    if let Some((session, until)) = &hold {
        tasks.relay.hold_links(session, *until);
    }
    tasks.running.insert(record.id.clone(), cancel.clone());
    let id = record.id.clone();
    let tasks = tasks.arc();
    tokio::spawn(async move {
        drive(&tasks, &job, &id, &mut call, cancel).await;
        call.abort();
        tasks.running.remove(&id);
        if let Some((session, until)) = hold {
            tasks.relay.end_hold(&session, until);
        }
    });
    tracing::info!(task = %record.id, method = %record.method, upstream = %record.upstream, "Task created");
    Ok(created_result(&record).into())
}

/// Cancels the call it guards when dropped, unless disarmed (`.0 = None`).
struct CancelOnDrop(Option<CancellationToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            token.cancel();
        }
    }
}

/// What the client gets when its request became a task.
pub fn created_result(record: &TaskRecord) -> Value {
    if record.era == Era::Stateless {
        let mut task = record.stateless_task();
        task[RESULT_TYPE] = Value::from("task");
        task
    } else {
        json!({ "task": record.handshake_task() })
    }
}

async fn create(tasks: &Tasks, record: &TaskRecord) -> Result<(), ErrorObject> {
    let limit = tasks.config.max_per_principal;
    tasks.store.create(record, limit).await.map_err(store_error)
}

/// The client-facing error for a store failure.
pub fn store_error(e: StoreError) -> ErrorObject {
    match e {
        StoreError::Limit(_) => ErrorObject::new(codes::GATEWAY_BUSY, e.to_string()),
        StoreError::Backend(_) => ErrorObject::internal(e.to_string()),
    }
}

fn joined_outcome(joined: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    joined.unwrap_or_else(|e| Err(ErrorObject::internal(format!("the call failed: {e}"))))
}

/// Runs a task to its end: the call, each round of input, cancellation and expiry.
async fn drive(
    tasks: &Tasks,
    job: &Arc<Job>,
    id: &str,
    call: &mut JoinHandle<Outcome>,
    cancel: CancellationToken,
) {
    let store = tasks.store.clone();
    let Ok(Some(record)) = store.get(id).await else {
        return;
    };
    let expires = Duration::from_millis(record.expires_ms().saturating_sub(now_ms()));
    let expiry = tokio::time::sleep(expires);
    tokio::pin!(expiry);
    loop {
        let outcome = tokio::select! {
            joined = &mut *call => joined_outcome(joined),
            _ = stop_requested(tasks, id, &cancel) => {
                cancel.cancel();
                job.cancel_upstream_task().await;
                update(tasks, id, |r| r.set_status(Status::Cancelled, None)).await;
                tracing::info!(task = %id, "Task cancelled; its call was cancelled upstream");
                return;
            }
            _ = &mut expiry => {
                cancel.cancel();
                job.cancel_upstream_task().await;
                tracing::info!(task = %id, "Task expired before its call ended; call cancelled");
                return;
            }
        };
        let result = match outcome {
            Ok(result) if job.era() == Era::Stateless && result.result_type() == INPUT_REQUIRED => {
                result
            }
            Ok(result) => {
                let result = result.into_value();
                update(tasks, id, |r| r.finish(Ok(result.clone()))).await;
                return;
            }
            Err(e) if e.code == codes::REQUEST_CANCELLED => {
                // The chain saw the cancellation first: the upstream's own task (if any)
                // is cancelled all the same.
                job.cancel_upstream_task().await;
                update(tasks, id, |r| r.set_status(Status::Cancelled, None)).await;
                return;
            }
            Err(e) => {
                let error = serde_json::to_value(&e)
                    .unwrap_or_else(|_| json!({"code": e.code, "message": e.message}));
                update(tasks, id, |r| r.finish(Err(error.clone()))).await;
                return;
            }
        };
        // The call needs the client's input: the task waits for it.
        let requests = result
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let state = result.get("requestState").cloned();
        update(tasks, id, |r| {
            r.input_requests = requests.clone();
            r.set_status(Status::InputRequired, None);
            true
        })
        .await;
        let answers = tokio::select! {
            answers = answered(tasks, id) => answers,
            _ = &mut expiry => None,
        };
        let Some(answers) = answers else {
            // Cancelled or expired while waiting: no call is running upstream, but the
            // upstream's own task (if any) is.
            job.cancel_upstream_task().await;
            update(tasks, id, |r| r.set_status(Status::Cancelled, None)).await;
            return;
        };
        let mut params = job.req.params().into_value().unwrap_or_else(|| json!({}));
        params["inputResponses"] = Value::Object(answers);
        if let Some(state) = state.filter(Value::is_string) {
            params["requestState"] = state;
        }
        update(tasks, id, |r| r.set_status(Status::Working, None)).await;
        *call = job.spawn(Params::from(params), cancel.clone());
    }
}

/// Applies a change to the task and tells its client about a new status.
async fn update(tasks: &Tasks, id: &str, mut change: impl FnMut(&mut TaskRecord) -> bool + Send) {
    match tasks.store.update(id, &mut change).await {
        Ok(Some(record)) => notify_status(tasks, &record),
        Ok(None) => tracing::debug!(task = %id, "Task gone (expired) before its update"),
        Err(e) => tracing::warn!(task = %id, error = %e, "Task update lost"),
    }
}

/// `notifications/tasks/status` to the session that created a 2025-11-25 task (a courtesy:
/// clients must not rely on it).
pub fn notify_status(tasks: &Tasks, record: &TaskRecord) {
    if record.era == Era::Stateless {
        return;
    }
    let Some(session) = tasks.owner_session(record) else {
        return;
    };
    let msg = Message::Notification(Notification::new(
        methods::TASKS_STATUS,
        Some(record.handshake_task()),
    ));
    session.send(msg);
}

/// Resolves when the task should stop: cancelled here, cancelled on another replica (seen
/// in the store), ended, or forgotten.
async fn stop_requested(tasks: &Tasks, id: &str, cancel: &CancellationToken) {
    let store = &tasks.store;
    loop {
        let mut watch = store.watch();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = watch.wait(CANCEL_CHECK) => {}
        }
        match store.get(id).await {
            Ok(Some(r)) if !r.cancel_requested && !r.status.is_terminal() => {}
            Ok(_) => return,
            Err(_) => {}
        }
    }
}

/// Waits until every outstanding input request of the task is answered and takes the
/// answers; `None` when the task is cancelled or gone meanwhile.
async fn answered(tasks: &Tasks, id: &str) -> Option<Map<String, Value>> {
    let store = &tasks.store;
    loop {
        let mut watch = store.watch();
        let record = store.get(id).await.ok()?;
        let record = record?;
        if record.cancel_requested || record.status.is_terminal() {
            return None;
        }
        if record.input_requests.is_empty() {
            let mut taken = Map::new();
            store
                .update(id, &mut |r| {
                    taken = std::mem::take(&mut r.input_responses);
                    true
                })
                .await
                .ok()?;
            return Some(taken);
        }
        watch.wait(CANCEL_CHECK).await;
    }
}

//! Tasks an upstream runs itself. The upstream's task id never reaches the client: the
//! gateway records the task under an id of its own (random, bound to the caller like any
//! task) and maps it back on every `tasks/*` request, status notification and related
//! server→client request.

use serde_json::{Map, Value};

use crate::gateway::Gateway;
use crate::pipeline::{Outcome, RequestContext};
use crate::protocol::envelope::result_type;
use crate::protocol::{ErrorObject, Message, Notification, methods};
use crate::session::tasks::record::{RELATED_TASK, Status, TaskRecord, new_id, now_ms};

/// An upstream answered a request with a task (2025-11-25 `{task}` or a 2026-07-28 flat
/// task): record it and hand the client the gateway's id. Any other answer (the upstream
/// chose to answer at once) passes untouched.
pub async fn adopt(
    gateway: &Gateway,
    ctx: &RequestContext,
    upstream: usize,
    method: &str,
    mut answer: Value,
) -> Outcome {
    let modern = ctx.is_modern();
    let task = if modern {
        if result_type(&answer) != "task" {
            return Ok(answer);
        }
        answer.clone()
    } else {
        match answer.get("task") {
            Some(task) if task.is_object() => task.clone(),
            _ => return Ok(answer),
        }
    };
    let Some(remote) = task
        .get("taskId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Err(ErrorObject::internal(
            "the upstream created a task without a taskId",
        ));
    };
    let config = &gateway.tasks.config;
    let ttl_field = if modern { "ttlMs" } else { "ttl" };
    let poll_field = if modern {
        "pollIntervalMs"
    } else {
        "pollInterval"
    };
    let now = now_ms();
    let record = TaskRecord {
        id: new_id(),
        owner: super::owner_of(ctx),
        method: method.to_owned(),
        upstream: gateway.upstreams[upstream].name().to_owned(),
        remote: Some(remote.clone()),
        modern,
        status: task
            .get("status")
            .and_then(Value::as_str)
            .and_then(Status::parse)
            .unwrap_or(Status::Working),
        status_message: None,
        created_ms: now,
        updated_ms: now,
        ttl_ms: config.ttl_ms(task.get(ttl_field).and_then(Value::as_u64)),
        poll_ms: task
            .get(poll_field)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| config.poll_ms()),
        result: None,
        error: None,
        input_requests: Map::new(),
        input_responses: Map::new(),
        cancel_requested: false,
    };
    if let Err(e) = gateway
        .tasks
        .store
        .create(&record, config.max_per_principal)
        .await
    {
        // No room: the upstream's task must not run unowned.
        let cancel = serde_json::json!({ "taskId": remote });
        let origin = crate::router::origin_of(ctx);
        let _ = gateway.upstreams[upstream]
            .request(origin, methods::TASKS_CANCEL, Some(cancel))
            .await;
        return Err(super::runner::store_error(e));
    }
    if gateway.upstreams[upstream].dedicated()
        && let Some(session) = &record.owner.session
    {
        gateway.tasks.hold_link(session, record.expires_ms());
    }
    tracing::info!(task = %record.id, upstream = %record.upstream, "Upstream task passed through");
    let id = Value::from(record.id.as_str());
    if modern {
        answer["taskId"] = id;
    } else {
        answer["task"]["taskId"] = id;
    }
    Ok(answer)
}

/// Sends a `tasks/*` request for a passed-through task to its upstream, with the
/// upstream's id, and maps the answer back to the gateway's id.
pub async fn forward(
    gateway: &Gateway,
    ctx: &RequestContext,
    record: &TaskRecord,
    method: &str,
    params: Option<&Value>,
) -> Outcome {
    let upstream = gateway
        .upstreams
        .iter()
        .find(|u| u.name() == record.upstream)
        .ok_or_else(|| unknown(&record.id))?;
    let remote = record.remote.as_deref().unwrap_or_default();
    let mut params = params.cloned().unwrap_or_else(|| serde_json::json!({}));
    params["taskId"] = Value::from(remote);
    // `tasks/result` blocks until the task ends: it may take as long as the task lives.
    let timeout = if method == methods::TASKS_RESULT {
        let left = record.expires_ms().saturating_sub(now_ms());
        upstream
            .config
            .timeout
            .max(std::time::Duration::from_millis(left))
    } else {
        upstream.config.timeout
    };
    let mut answer = upstream
        .request_within(crate::router::origin_of(ctx), method, Some(params), timeout)
        .await?;
    rename(&mut answer, remote, &record.id);
    keep_status(gateway, &record.id, &answer).await;
    Ok(answer)
}

/// Records the status an upstream reported for its task (listings show it).
async fn keep_status(gateway: &Gateway, id: &str, task: &Value) {
    let Some(status) = task
        .get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
    else {
        return;
    };
    let message = task
        .get("statusMessage")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let _ = gateway
        .tasks
        .store
        .update(id, &mut |r| r.set_status(status, message.clone()))
        .await;
}

/// Replaces the upstream's task id by the gateway's where a task-related answer carries it:
/// `taskId` at the root and `_meta.related-task.taskId`.
fn rename(value: &mut Value, remote: &str, id: &str) {
    if value.get("taskId").and_then(Value::as_str) == Some(remote) {
        value["taskId"] = Value::from(id);
    }
    if let Some(related) = value.pointer_mut(&format!("/_meta/{}", RELATED_TASK.replace('/', "~1")))
        && related.get("taskId").and_then(Value::as_str) == Some(remote)
    {
        related["taskId"] = Value::from(id);
    }
}

/// A server→client request or notification an upstream tied to one of its tasks
/// (`_meta.related-task`): the id is mapped to the gateway's. Returns the owning session
/// when the task is known.
pub async fn map_related(
    gateway: &Gateway,
    upstream: usize,
    params: &mut Value,
) -> Option<TaskRecord> {
    let pointer = format!("/_meta/{}/taskId", RELATED_TASK.replace('/', "~1"));
    let remote = params.pointer(&pointer)?.as_str()?.to_owned();
    let record = find(gateway, upstream, &remote).await?;
    if let Some(slot) = params.pointer_mut(&pointer) {
        *slot = Value::from(record.id.as_str());
    }
    Some(record)
}

/// `notifications/tasks/status` from an upstream: recorded, and relayed with the
/// gateway's id to the session that owns the task.
pub async fn status_notification(gateway: &Gateway, upstream: usize, mut params: Value) {
    let Some(remote) = params
        .get("taskId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let Some(record) = find(gateway, upstream, &remote).await else {
        return;
    };
    params["taskId"] = Value::from(record.id.as_str());
    keep_status(gateway, &record.id, &params).await;
    let Some(session) = super::owner_session(gateway, &record) else {
        return;
    };
    session.send(Message::Notification(Notification::new(
        methods::TASKS_STATUS,
        Some(params),
    )));
}

async fn find(gateway: &Gateway, upstream: usize, remote: &str) -> Option<TaskRecord> {
    let name = gateway.upstreams.get(upstream)?.name();
    let id = gateway.tasks.store.by_remote(name, remote).await.ok()??;
    gateway.tasks.store.get(&id).await.ok()?
}

/// The error for a task the caller may not see, whether it exists or not.
pub fn unknown(id: &str) -> ErrorObject {
    ErrorObject::invalid_params(format!("Unknown task: {id}"))
}

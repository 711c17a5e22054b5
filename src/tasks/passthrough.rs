//! Tasks an upstream runs itself. The upstream's task id never reaches the client: the
//! gateway records the task under an id of its own (random, bound to the caller like any
//! task) and maps it back on every `tasks/*` request, status notification and related
//! server→client request.

use serde_json::{Map, Value};

use super::Tasks;
use crate::pipeline::{Outcome, RequestContext};
use crate::protocol::{Era, ErrorObject, Payload, methods};
use crate::session::tasks::record::{RELATED_TASK, Status, TaskRecord, new_id, now_ms};
use crate::session::tasks::store::keep_reported_status;

/// An upstream answered a request with a task (2025-11-25 `{task}` or a 2026-07-28 flat
/// task): record it and hand the client the gateway's id. Any other answer (the upstream
/// chose to answer at once) passes untouched.
pub async fn adopt(
    tasks: &Tasks,
    ctx: &RequestContext,
    upstream: usize,
    method: &str,
    mut answer: Payload,
) -> Outcome {
    let era = ctx.era();
    let stateless = era == Era::Stateless;
    let task = if stateless {
        if answer.result_type() != "task" {
            return Ok(answer);
        }
        (*answer).clone()
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
    let config = &tasks.config;
    let ttl_field = if stateless { "ttlMs" } else { "ttl" };
    let poll_field = if stateless {
        "pollIntervalMs"
    } else {
        "pollInterval"
    };
    let now = now_ms();
    let record = TaskRecord {
        id: new_id(),
        owner: super::owner_of(ctx),
        method: method.to_owned(),
        upstream: tasks.upstreams.at(upstream).name().to_owned(),
        remote: Some(remote.clone()),
        era,
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
    if let Err(e) = tasks.store.create(&record, config.max_per_principal).await {
        // No room: the upstream's task must not run unowned.
        let cancel = serde_json::json!({ "taskId": remote });
        let origin = ctx.origin();
        let _ = tasks
            .upstreams
            .at(upstream)
            .request(origin, methods::TASKS_CANCEL, Some(cancel))
            .await;
        return Err(super::runner::store_error(e));
    }
    if tasks.upstreams.at(upstream).dedicated()
        && let Some(session) = &record.owner.session
    {
        tasks.relay.hold_links(session, record.expires_ms());
    }
    tracing::info!(task = %record.id, upstream = %record.upstream, "Upstream task passed through");
    let id = Value::from(record.id.as_str());
    if stateless {
        answer["taskId"] = id;
    } else {
        answer["task"]["taskId"] = id;
    }
    Ok(answer)
}

/// Sends a `tasks/*` request for a passed-through task to its upstream, with the
/// upstream's id, and maps the answer back to the gateway's id.
pub async fn forward(
    tasks: &Tasks,
    ctx: &RequestContext,
    record: &TaskRecord,
    method: &str,
    params: Option<&Value>,
) -> Outcome {
    let upstream = tasks
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
        .request_within(ctx.origin(), method, Some(params), timeout)
        .await?;
    rename(&mut answer, remote, &record.id);
    keep_reported_status(&*tasks.store, &record.id, &answer).await;
    Ok(answer)
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

/// The error for a task the caller may not see, whether it exists or not.
pub fn unknown(id: &str) -> ErrorObject {
    ErrorObject::invalid_params(format!("Unknown task: {id}"))
}

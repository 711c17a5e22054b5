//! The task methods clients call: `tasks/get`, `tasks/result`, `tasks/list`, `tasks/cancel`
//! (2025-11-25) and `tasks/get`, `tasks/update`, `tasks/cancel` (2026-07-28 extension).
//! Wrapped tasks are answered from the store; passed-through ones by their upstream.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Tasks;
use super::owner_of;
use super::passthrough::{self, unknown};
use crate::pipeline::{Outcome, RequestContext};
use crate::protocol::{Era, ErrorObject, Request, codes, extensions, methods};
use crate::session::tasks::record::{RELATED_TASK, Status, TaskRecord};

/// Longest a `tasks/result` waits before re-reading the task (a wake-up, not a limit: it
/// blocks until the task ends or the client gives up).
const RESULT_WAIT: Duration = Duration::from_secs(30);
/// AEAD purpose of `tasks/list` cursors.
const CURSOR: &[u8] = b"tasks-cursor/v1";

pub async fn handle(tasks: &Tasks, ctx: &RequestContext, req: &Request) -> Outcome {
    if let Some(envelope) = &ctx.envelope {
        if !extensions::declares(&envelope.client_capabilities, extensions::TASKS) {
            return Err(ErrorObject::missing_capability(
                json!({ "extensions": { extensions::TASKS: {} } }),
                format!("{} needs the {} extension", req.method, extensions::TASKS),
            ));
        }
    } else if req.method == methods::TASKS_UPDATE {
        return Err(ErrorObject::method_not_found(&req.method));
    }
    if req.method == methods::TASKS_LIST {
        return list(tasks, ctx, req).await;
    }
    let record = lookup(tasks, ctx, req).await?;
    if record.remote.is_some() {
        let answer = passthrough::forward(
            tasks,
            ctx,
            &record,
            &req.method,
            req.params_except_arguments(),
        );
        return answer.await;
    }
    match req.method.as_str() {
        methods::TASKS_GET if ctx.era() == Era::Stateless => Ok(record.detailed().into()),
        methods::TASKS_GET => Ok(record.handshake_task().into()),
        methods::TASKS_RESULT => result(tasks, record).await,
        methods::TASKS_CANCEL => cancel(tasks, ctx, record).await,
        methods::TASKS_UPDATE => update(tasks, req, record).await,
        other => Err(ErrorObject::method_not_found(other)),
    }
}

/// The caller's task named by `params.taskId`; someone else's is as unknown as a missing one.
async fn lookup(
    tasks: &Tasks,
    ctx: &RequestContext,
    req: &Request,
) -> Result<TaskRecord, ErrorObject> {
    let id = req.str_param("taskId")?;
    let record = tasks
        .store
        .get(id)
        .await
        .map_err(super::runner::store_error)?;
    match record {
        Some(record) if record.owner == owner_of(ctx) => Ok(record),
        _ => Err(unknown(id)),
    }
}

/// `tasks/result`: blocks until the task ends, then answers exactly what the request would
/// have, tagged with the task.
async fn result(tasks: &Tasks, record: TaskRecord) -> Outcome {
    let store = &tasks.store;
    let id = record.id;
    let record = loop {
        // The watch is taken before the read, so an end between the two is not missed.
        let mut watch = store.watch();
        let record = store
            .get(&id)
            .await
            .map_err(super::runner::store_error)?
            .ok_or_else(|| unknown(&id))?;
        if record.status.is_terminal() {
            break record;
        }
        watch.wait(RESULT_WAIT).await;
    };
    let related = json!({ "taskId": record.id });
    match (record.status, record.result, record.error) {
        (Status::Cancelled, _, _) => Err(ErrorObject::new(
            codes::REQUEST_CANCELLED,
            format!("task {} was cancelled", record.id),
        )),
        (_, Some(mut result), _) => {
            result["_meta"][RELATED_TASK] = related;
            Ok(result.into())
        }
        (_, None, Some(error)) => {
            let mut error: ErrorObject = serde_json::from_value(error)
                .unwrap_or_else(|_| ErrorObject::internal("the task failed"));
            let mut data = error.data.take().unwrap_or_else(|| json!({}));
            if data.is_object() {
                data["_meta"][RELATED_TASK] = related;
            }
            Err(error.with_data(data))
        }
        _ => Err(ErrorObject::internal("the task ended without an outcome")),
    }
}

/// `tasks/cancel`: marks the task cancelled and stops its call (here, or through the store
/// on the replica that runs it). 2025-11-25 answers the task (a finished one is -32602);
/// 2026-07-28 answers an empty ack, also for a finished task.
async fn cancel(tasks: &Tasks, ctx: &RequestContext, record: TaskRecord) -> Outcome {
    if record.status.is_terminal() {
        return if ctx.era() == Era::Stateless {
            Ok(json!({}).into())
        } else {
            Err(ErrorObject::invalid_params(format!(
                "task {} already ended ({}); it cannot be cancelled",
                record.id,
                record.status.as_str()
            )))
        };
    }
    let updated = tasks
        .store
        .update(&record.id, &mut |r| {
            if r.status.is_terminal() {
                return false;
            }
            r.cancel_requested = true;
            r.set_status(Status::Cancelled, Some("Cancelled by the client".into()))
        })
        .await
        .map_err(super::runner::store_error)?
        .ok_or_else(|| unknown(&record.id))?;
    tasks.stop_local(&record.id);
    super::runner::notify_status(tasks, &updated);
    if ctx.era() == Era::Stateless {
        Ok(json!({}).into())
    } else {
        Ok(updated.handshake_task().into())
    }
}

/// `tasks/update`: answers to the task's input requests. Unknown or already answered keys
/// are ignored; the task resumes once every request is answered.
async fn update(tasks: &Tasks, req: &Request, record: TaskRecord) -> Outcome {
    let Some(answers) = req.param("inputResponses").and_then(Value::as_object) else {
        return Err(ErrorObject::invalid_params(
            "'inputResponses' must be an object",
        ));
    };
    tasks
        .store
        .update(&record.id, &mut |r| {
            let mut changed = false;
            for (key, answer) in answers {
                if r.input_requests.remove(key).is_some() {
                    r.input_responses.insert(key.clone(), answer.clone());
                    changed = true;
                }
            }
            changed
        })
        .await
        .map_err(super::runner::store_error)?;
    Ok(json!({}).into())
}

/// Where a `tasks/list` page ends.
#[derive(Serialize, Deserialize)]
struct Cursor {
    created: u64,
    id: String,
}

/// `tasks/list` (2025-11-25): the caller's tasks, oldest first, a page at a time.
async fn list(tasks: &Tasks, ctx: &RequestContext, req: &Request) -> Outcome {
    let after = match req.param("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let bytes = tasks
                .sealer
                .open(CURSOR, text)
                .map_err(|_| ErrorObject::invalid_params("invalid cursor"))?;
            let cursor: Cursor = serde_json::from_slice(&bytes)
                .map_err(|_| ErrorObject::invalid_params("invalid cursor"))?;
            Some(cursor)
        }
        Some(_) => return Err(ErrorObject::invalid_params("'cursor' must be a string")),
    };
    let all = tasks
        .store
        .list(&owner_of(ctx))
        .await
        .map_err(super::runner::store_error)?;
    let page_size = tasks.page_size;
    let rest: Vec<&TaskRecord> = all
        .iter()
        .filter(|r| match &after {
            Some(c) => (r.created_ms, r.id.as_str()) > (c.created, c.id.as_str()),
            None => true,
        })
        .collect();
    let page = &rest[..rest.len().min(page_size)];
    let mut result =
        json!({ "tasks": page.iter().map(|r| r.handshake_task()).collect::<Vec<_>>() });
    if rest.len() > page.len()
        && let Some(last) = page.last()
    {
        let cursor = Cursor {
            created: last.created_ms,
            id: last.id.clone(),
        };
        let payload = serde_json::to_vec(&cursor).unwrap_or_default();
        result["nextCursor"] = Value::from(tasks.sealer.seal(CURSOR, &payload));
    }
    Ok(result.into())
}

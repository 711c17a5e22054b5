//! Task traffic on the way back: an upstream's task ids in its server→client requests
//! (`_meta.related-task`) and status notifications are replaced by the gateway's, and the
//! task's owning session hears about it.

use serde_json::Value;

use super::Relay;
use crate::protocol::{Message, Notification, methods};
use crate::session::tasks::record::{RELATED_TASK, TaskRecord};
use crate::session::tasks::store::{find_remote, keep_reported_status};

/// A server→client request or notification an upstream tied to one of its tasks
/// (`_meta.related-task`): the id is mapped to the gateway's. Returns the owning session
/// when the task is known.
pub async fn map_related(relay: &Relay, upstream: usize, params: &mut Value) -> Option<TaskRecord> {
    let pointer = format!("/_meta/{}/taskId", RELATED_TASK.replace('/', "~1"));
    let remote = params.pointer(&pointer)?.as_str()?.to_owned();
    let record = find(relay, upstream, &remote).await?;
    if let Some(slot) = params.pointer_mut(&pointer) {
        *slot = Value::from(record.id.as_str());
    }
    Some(record)
}

/// `notifications/tasks/status` from an upstream: recorded, and relayed with the
/// gateway's id to the session that owns the task.
pub async fn status_notification(relay: &Relay, upstream: usize, mut params: Value) {
    let Some(remote) = params
        .get("taskId")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return;
    };
    let Some(record) = find(relay, upstream, &remote).await else {
        return;
    };
    params["taskId"] = Value::from(record.id.as_str());
    keep_reported_status(&*relay.tasks, &record.id, &params).await;
    let Some(session) = record
        .owner
        .session
        .as_deref()
        .and_then(|s| relay.sessions.peek(s))
    else {
        return;
    };
    session.send(Message::Notification(Notification::new(
        methods::TASKS_STATUS,
        Some(params),
    )));
}

async fn find(relay: &Relay, upstream: usize, remote: &str) -> Option<TaskRecord> {
    let upstream = relay.upstreams.get(upstream)?;
    find_remote(&*relay.tasks, upstream.name(), remote).await
}

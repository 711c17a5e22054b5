//! Where tasks live. The in-memory store serves one replica; the Redis store lets every
//! replica answer for every task (state and results in Redis, keyed by task id).
//!
//! The contract every store keeps (its tests run against both, see `contract`):
//! - a record is readable as soon as `create` returns (a task is durable before its id is
//!   handed out), and is forgotten once its TTL has passed;
//! - `update` is atomic per record: concurrent changes from several replicas never lose
//!   one another (the runner finishing and a client cancelling, say);
//! - `create` refuses a record whose owner already has `limit` live tasks;
//! - `list` returns an owner's live tasks, oldest first.

pub mod memory;
pub mod redis;

#[cfg(test)]
pub(crate) mod contract;
#[cfg(test)]
pub(crate) mod test_redis;

use std::time::Duration;

use futures::future::BoxFuture;

use serde_json::Value;

use super::record::{Owner, Status, TaskRecord};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The owner already has as many live tasks as allowed.
    #[error("too many tasks: at most {0} live tasks per caller")]
    Limit(usize),
    /// The backing service failed or could not be reached.
    #[error("task store unavailable: {0}")]
    Backend(String),
}

/// A change to a record: returns whether it changed anything (nothing is written if not).
pub type Change<'a> = &'a mut (dyn FnMut(&mut TaskRecord) -> bool + Send);

pub trait TaskStore: Send + Sync + 'static {
    /// Stores a new record, unless its owner already has `limit` live tasks.
    fn create<'a>(
        &'a self,
        record: &'a TaskRecord,
        limit: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The live record with this id.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>>;

    /// Applies `change` atomically and returns the record as stored afterwards (`None` when
    /// there is no live record with this id).
    fn update<'a>(
        &'a self,
        id: &'a str,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>>;

    /// The owner's live tasks, oldest first.
    fn list<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<Vec<TaskRecord>, StoreError>>;

    /// The gateway id of the task an upstream knows as `remote`.
    fn by_remote<'a>(
        &'a self,
        upstream: &'a str,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;

    /// A way to wait for records to change, taken *before* reading what to wait on.
    fn watch(&self) -> Watch;
}

/// The live record of the task an upstream (by name) knows as `remote`.
pub async fn find_remote(
    store: &dyn TaskStore,
    upstream: &str,
    remote: &str,
) -> Option<TaskRecord> {
    let id = store.by_remote(upstream, remote).await.ok()??;
    store.get(&id).await.ok()?
}

/// Records the status an upstream reported for its task (a task or status notification
/// it sent), so listings show it.
pub async fn keep_reported_status(store: &dyn TaskStore, id: &str, task: &Value) {
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
    let _ = store
        .update(id, &mut |r| r.set_status(status, message.clone()))
        .await;
}

/// Waits for the next change after it was taken, or at most a given time. Stores that can
/// tell (memory) wake it on change; others (Redis) wake it on a short poll, so a waiter
/// re-reads at that pace.
pub enum Watch {
    Changes(tokio::sync::watch::Receiver<u64>),
    Poll(Duration),
}

impl Watch {
    pub async fn wait(&mut self, at_most: Duration) {
        match self {
            Watch::Changes(rx) => {
                let _ = tokio::time::timeout(at_most, rx.changed()).await;
            }
            Watch::Poll(every) => tokio::time::sleep((*every).min(at_most)).await,
        }
    }
}

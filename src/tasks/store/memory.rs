//! The default store: this process's memory. Tasks do not survive a restart and are seen
//! only by this replica.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::{Change, StoreError, TaskStore, Watch};
use crate::tasks::record::{Owner, TaskRecord, now_ms};

pub struct MemoryStore {
    records: Mutex<HashMap<String, TaskRecord>>,
    /// Bumped on every change, so waiters (`tasks/result`, runners) wake at once.
    generation: watch::Sender<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            records: Mutex::new(HashMap::new()),
            generation: watch::channel(0).0,
        }
    }
}

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, TaskRecord>) -> T) -> T {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        records.retain(|_, r| !r.is_expired(now));
        f(&mut records)
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }
}

impl TaskStore for MemoryStore {
    fn create<'a>(
        &'a self,
        record: &'a TaskRecord,
        limit: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let outcome = self.with(|records| {
            let live = records.values().filter(|r| r.owner == record.owner).count();
            if live >= limit {
                return Err(StoreError::Limit(limit));
            }
            records.insert(record.id.clone(), record.clone());
            Ok(())
        });
        if outcome.is_ok() {
            self.bump();
        }
        futures::future::ready(outcome).boxed()
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        let found = self.with(|records| records.get(id).cloned());
        futures::future::ready(Ok(found)).boxed()
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        let (changed, record) = self.with(|records| match records.get_mut(id) {
            Some(record) => (change(record), Some(record.clone())),
            None => (false, None),
        });
        if changed {
            self.bump();
        }
        futures::future::ready(Ok(record)).boxed()
    }

    fn list<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<Vec<TaskRecord>, StoreError>> {
        let mut mine: Vec<TaskRecord> = self.with(|records| {
            records
                .values()
                .filter(|r| &r.owner == owner)
                .cloned()
                .collect()
        });
        mine.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        futures::future::ready(Ok(mine)).boxed()
    }

    fn by_remote<'a>(
        &'a self,
        upstream: &'a str,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        let found = self.with(|records| {
            records
                .values()
                .find(|r| r.upstream == upstream && r.remote.as_deref() == Some(remote))
                .map(|r| r.id.clone())
        });
        futures::future::ready(Ok(found)).boxed()
    }

    fn watch(&self) -> Watch {
        Watch::Changes(self.generation.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        super::super::contract::run(&MemoryStore::default()).await;
    }
}

//! The default store: this process's memory. Tasks do not survive a restart and are seen
//! only by this replica.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::{Change, StoreError, TaskStore, Watch};
use crate::session::tasks::record::{Owner, TaskRecord, now_ms};

/// How often expired records are swept out (reads skip them in between).
const SWEEP_EVERY_MS: u64 = 1000;

pub struct MemoryStore {
    records: Mutex<HashMap<String, TaskRecord>>,
    /// When expired records were last swept (ms since the epoch).
    swept_ms: std::sync::atomic::AtomicU64,
    /// Bumped on every change, so waiters (`tasks/result`, runners) wake at once.
    generation: watch::Sender<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            records: Mutex::new(HashMap::new()),
            swept_ms: std::sync::atomic::AtomicU64::new(0),
            generation: watch::channel(0).0,
        }
    }
}

impl MemoryStore {
    /// Runs `f` on the records; expired ones are swept out at most once a second, so
    /// callers still skip expired records themselves (`live`).
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, TaskRecord>, u64) -> T) -> T {
        use std::sync::atomic::Ordering;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        if now.saturating_sub(self.swept_ms.load(Ordering::Relaxed)) >= SWEEP_EVERY_MS {
            records.retain(|_, r| !r.is_expired(now));
            self.swept_ms.store(now, Ordering::Relaxed);
        }
        f(&mut records, now)
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
        let outcome = self.with(|records, now| {
            let live = records
                .values()
                .filter(|r| r.owner == record.owner && !r.is_expired(now))
                .count();
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
        let found =
            self.with(|records, now| records.get(id).filter(|r| !r.is_expired(now)).cloned());
        futures::future::ready(Ok(found)).boxed()
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        let (changed, record) = self.with(|records, now| match records.get_mut(id) {
            Some(record) if !record.is_expired(now) => (change(record), Some(record.clone())),
            _ => (false, None),
        });
        if changed {
            self.bump();
        }
        futures::future::ready(Ok(record)).boxed()
    }

    fn list<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<Vec<TaskRecord>, StoreError>> {
        let mut mine: Vec<TaskRecord> = self.with(|records, now| {
            records
                .values()
                .filter(|r| &r.owner == owner && !r.is_expired(now))
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
        let found = self.with(|records, now| {
            records
                .values()
                .find(|r| {
                    r.upstream == upstream
                        && r.remote.as_deref() == Some(remote)
                        && !r.is_expired(now)
                })
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

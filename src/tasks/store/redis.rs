//! Tasks in a Redis server shared by the replicas (`tasks.redis`). Placeholder until the
//! Redis backend lands: every operation reports the store unavailable.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Change, StoreError, TaskStore, Watch};
use crate::tasks::record::{Owner, TaskRecord};

pub struct RedisStore;

impl RedisStore {
    pub fn new(_url: &str, _prefix: &str) -> RedisStore {
        RedisStore
    }
}

fn unavailable<'a, T: Send + 'a>() -> BoxFuture<'a, Result<T, StoreError>> {
    futures::future::ready(Err(StoreError::Backend("redis store not built".into()))).boxed()
}

impl TaskStore for RedisStore {
    fn create<'a>(&'a self, _: &'a TaskRecord, _: usize) -> BoxFuture<'a, Result<(), StoreError>> {
        unavailable()
    }
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        unavailable()
    }
    fn update<'a>(
        &'a self,
        _: &'a str,
        _: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        unavailable()
    }
    fn list<'a>(&'a self, _: &'a Owner) -> BoxFuture<'a, Result<Vec<TaskRecord>, StoreError>> {
        unavailable()
    }
    fn by_remote<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        unavailable()
    }
    fn watch(&self) -> Watch {
        Watch::Poll(std::time::Duration::from_millis(250))
    }
}

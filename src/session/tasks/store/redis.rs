//! Tasks in a Redis server shared by the replicas (`tasks.redis`), so any replica answers
//! `tasks/*` for a task another one created or runs.
//!
//! Keys (all under `tasks.redis_prefix`, `P` below):
//! - `P:task:ID`: the record as JSON, expiring with the task;
//! - `P:owner:HASH`: a sorted set of the owner's task ids scored by expiry (HASH = SHA-256 of
//!   the owner), for `list` and the per-owner limit;
//! - `P:remote:UPSTREAM:REMOTE`: the id of a passed-through task, expiring with it.
//!
//! Writes that must be atomic are Lua scripts: `create` counts the owner's live tasks and
//! inserts in one step (so racing replicas cannot overshoot the limit), and `update` is a
//! compare-and-set retried on conflict. A script runs on one connection that every request
//! shares, which is why WATCH/MULTI is not used. Expiries are relative (`PX`), computed from
//! the gateway's clock like the record's own `expires_ms`, so a Redis clock that differs
//! does not shorten or stretch tasks. One Redis server (or a primary), not a cluster: the
//! scripts touch keys they derive themselves.
//!
//! The connection is a `net::redis` handle: nothing connects before the first request; the
//! connection is then reused and re-opened after a failure, every operation bounded by 5 s.
//! Failures are `StoreError::Backend` without the URL's password.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

use super::{Change, StoreError, TaskStore, Watch};
use crate::config::redis::RedisConfig;
use crate::net::redis::{Redis, RedisFault};
use crate::session::tasks::record::{Owner, TaskRecord, now_ms};

/// How often waiters re-read the store (Redis does not tell this store about changes).
const POLL: Duration = Duration::from_millis(200);
/// Compare-and-set attempts of one `update` before it gives up.
const UPDATE_ATTEMPTS: usize = 50;
/// Longest wait for one Redis operation, so a request fails with an error instead of
/// hanging.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// KEYS: record, owner index, [remote index]. ARGV: json, id, now, expires, limit, px,
/// record key prefix. Returns 1 when stored, 0 when the owner is at its limit.
const CREATE: &str = r"
local index = KEYS[2]
redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[3])
local limit = tonumber(ARGV[5])
if redis.call('ZCARD', index) >= limit then
  -- Members whose record vanished early (evicted, deleted by hand) do not count.
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if redis.call('EXISTS', ARGV[7] .. id) == 0 then
      redis.call('ZREM', index, id)
    end
  end
  if redis.call('ZCARD', index) >= limit then
    return 0
  end
end
local px = tonumber(ARGV[6])
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
redis.call('ZADD', index, ARGV[4], ARGV[2])
if redis.call('PTTL', index) < px then
  redis.call('PEXPIRE', index, px)
end
if KEYS[3] then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', px)
end
return 1
";

/// KEYS: record. ARGV: the value read, the new value, px. Writes only if the record still
/// holds what was read; returns 1 if written.
const COMPARE_AND_SET: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
return 1
";

pub struct RedisStore {
    /// The connection (opened on first use, reopened after faults; errors name nothing of
    /// the URL's password).
    redis: Arc<Redis>,
    prefix: String,
    create: redis::Script,
    compare_and_set: redis::Script,
}

impl RedisStore {
    /// A store for the Redis at `url`; nothing is contacted until the first operation.
    pub fn new(url: &str, prefix: &str) -> RedisStore {
        let config = RedisConfig {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            timeout: RESPONSE_TIMEOUT,
        };
        RedisStore {
            redis: Redis::new(&config),
            prefix: prefix.to_owned(),
            create: redis::Script::new(CREATE),
            compare_and_set: redis::Script::new(COMPARE_AND_SET),
        }
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.redis.run(cmd).await.map_err(backend)
    }

    fn task_key(&self, id: &str) -> String {
        format!("{}:task:{id}", self.prefix)
    }

    fn owner_key(&self, owner: &Owner) -> String {
        let json = serde_json::to_vec(owner).unwrap_or_default();
        let digest = Sha256::digest(&json);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:owner:{hex}", self.prefix)
    }

    fn remote_key(&self, upstream: &str, remote: &str) -> String {
        format!("{}:remote:{upstream}:{remote}", self.prefix)
    }

    /// The stored text of a record, if any.
    async fn read(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.run(redis::cmd("GET").arg(self.task_key(id))).await
    }

    async fn do_create(&self, record: &TaskRecord, limit: usize) -> Result<(), StoreError> {
        let now = now_ms();
        let expires = record.expires_ms();
        let px = expires.saturating_sub(now).max(1);
        let json = encode(record)?;
        let mut call = self.create.prepare_invoke();
        call.key(self.task_key(&record.id))
            .key(self.owner_key(&record.owner));
        if let Some(remote) = &record.remote {
            call.key(self.remote_key(&record.upstream, remote));
        }
        call.arg(json)
            .arg(&record.id)
            .arg(now)
            .arg(expires)
            .arg(limit)
            .arg(px)
            .arg(format!("{}:task:", self.prefix));
        let stored: i64 = self.redis.run_script(&call).await.map_err(backend)?;
        if stored == 1 {
            Ok(())
        } else {
            Err(StoreError::Limit(limit))
        }
    }

    async fn do_get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let Some(text) = self.read(id).await? else {
            return Ok(None);
        };
        let record = decode(&text)?;
        Ok((!record.is_expired(now_ms())).then_some(record))
    }

    async fn do_update(
        &self,
        id: &str,
        change: Change<'_>,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let key = self.task_key(id);
        for attempt in 0..UPDATE_ATTEMPTS {
            let Some(read) = self.read(id).await? else {
                return Ok(None);
            };
            let mut record = decode(&read)?;
            let now = now_ms();
            if record.is_expired(now) {
                return Ok(None);
            }
            if !change(&mut record) {
                return Ok(Some(record));
            }
            let px = record.expires_ms().saturating_sub(now).max(1);
            let written = encode(&record)?;
            let mut call = self.compare_and_set.prepare_invoke();
            call.key(&key).arg(&read).arg(written).arg(px);
            let swapped: i64 = self.redis.run_script(&call).await.map_err(backend)?;
            if swapped == 1 {
                return Ok(Some(record));
            }
            // Someone else wrote in between: read again, after a short, growing pause so
            // writers racing on one record spread out.
            let pause = rand::random_range(0..=(attempt as u64).min(10) + 1);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Err(backend_text(format!(
            "redis: task {id} kept changing; update given up after {UPDATE_ATTEMPTS} attempts"
        )))
    }

    async fn do_list(&self, owner: &Owner) -> Result<Vec<TaskRecord>, StoreError> {
        let now = now_ms();
        let index = self.owner_key(owner);
        let ids: Vec<String> = self
            .run(
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg(format!("({now}"))
                    .arg("+inf"),
            )
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.task_key(id)).collect();
        let texts: Vec<Option<String>> = self.run(redis::cmd("MGET").arg(&keys)).await?;
        let mut records = Vec::with_capacity(ids.len());
        let mut gone = Vec::new();
        for (id, text) in ids.iter().zip(texts) {
            match text {
                Some(text) => {
                    let record = decode(&text)?;
                    if &record.owner == owner && !record.is_expired(now) {
                        records.push(record);
                    }
                }
                None => gone.push(id.as_str()),
            }
        }
        if !gone.is_empty() {
            // Their records expired early or were removed: the index forgets them too.
            let dropped: Result<i64, _> = self.run(redis::cmd("ZREM").arg(&index).arg(&gone)).await;
            if let Err(e) = dropped {
                tracing::debug!(error = %e, "Stale task index entries kept");
            }
        }
        records.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(records)
    }

    async fn do_by_remote(
        &self,
        upstream: &str,
        remote: &str,
    ) -> Result<Option<String>, StoreError> {
        let id: Option<String> = self
            .run(redis::cmd("GET").arg(self.remote_key(upstream, remote)))
            .await?;
        let Some(id) = id else { return Ok(None) };
        // Only a live task counts, as in the other stores.
        Ok(self.do_get(&id).await?.map(|r| r.id))
    }
}

fn backend_text(text: String) -> StoreError {
    StoreError::Backend(text)
}

/// A Redis fault (its text already scrubbed of the password) as a store error.
fn backend(fault: RedisFault) -> StoreError {
    StoreError::Backend(fault.0)
}

fn encode(record: &TaskRecord) -> Result<String, StoreError> {
    serde_json::to_string(record)
        .map_err(|e| backend_text(format!("a task could not be encoded: {e}")))
}

fn decode(text: &str) -> Result<TaskRecord, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| backend_text(format!("redis: a stored task is not readable: {e}")))
}

impl TaskStore for RedisStore {
    fn create<'a>(
        &'a self,
        record: &'a TaskRecord,
        limit: usize,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.do_create(record, limit).boxed()
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        self.do_get(id).boxed()
    }

    fn update<'a>(
        &'a self,
        id: &'a str,
        change: Change<'a>,
    ) -> BoxFuture<'a, Result<Option<TaskRecord>, StoreError>> {
        self.do_update(id, change).boxed()
    }

    fn list<'a>(&'a self, owner: &'a Owner) -> BoxFuture<'a, Result<Vec<TaskRecord>, StoreError>> {
        self.do_list(owner).boxed()
    }

    fn by_remote<'a>(
        &'a self,
        upstream: &'a str,
        remote: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        self.do_by_remote(upstream, remote).boxed()
    }

    fn watch(&self) -> Watch {
        Watch::Poll(POLL)
    }
}

#[cfg(test)]
mod tests;

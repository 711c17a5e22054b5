//! Handshake-era sessions shared by every replica that names the same Redis (`redis`).
//!
//! **Where a session lives.** The session id stays 256 random bits; what the session is (the
//! negotiated revision, the client's info and capabilities, the principal it is bound to, its
//! log level and its resource subscriptions) is a record in Redis under
//! `P:session:{ID}`, written when `initialize` succeeds and whenever one of those changes, and
//! kept alive by the requests of the session (its TTL is `session_idle_timeout`, renewed at
//! most once a second per replica). A replica that gets a request for a session it does not
//! hold reads the record and builds its own copy; its upstream links are opened as the
//! copy's requests need them, and its subscriptions and log level are replayed upstream.
//! Redis rather than a sealed id: a sealed id could not change when the log level or the
//! subscriptions do, and could not be revoked, so `DELETE` on one replica could not end
//! the session on the others.
//!
//! **Where its stream is.** The replica that holds the client's GET stream writes its number
//! under `P:session:{ID}:get`. A message for the GET stream produced on another replica (a
//! list change, a resource update, a log line or server→client request not tied to a
//! request, a task status) is published on the holder's channel `P:replica:N`; when nobody
//! holds the stream, it is buffered where it was made, as with one replica. Replicas whose
//! upstreams report the same change (each replica has its own upstream sessions, each
//! subscribed for the copies it holds) each send it: the holder merges repeats of a list
//! change or of an update to one URI within a second.
//!
//! **Ending.** `DELETE` removes the record and announces it on `P:bus`; every replica drops
//! its copy. A copy that expires locally is only dropped here; the record expires in Redis by
//! itself when no replica renewed it for `session_idle_timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::principal::{AuthMethod, Principal};
use crate::net::redis::{Redis, RedisFault};
use crate::protocol::Message;

/// Renew a session's record at most this often per replica.
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Largest session record kept in Redis, in bytes of JSON.
pub const MAX_RECORD: usize = 64 * 1024;

/// Messages queued for other replicas; past it the oldest producers wait.
const OUTBOX: usize = 4096;

/// A message queued for the replica holding a session's GET stream: the session, its local
/// log (where the message stays when no replica holds the stream), the message.
pub type Outgoing = (String, Arc<super::events::EventLog>, Message);

/// What Redis keeps of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(rename = "v")]
    pub protocol_version: String,
    #[serde(rename = "info")]
    pub client_info: Value,
    #[serde(rename = "caps")]
    pub client_capabilities: Value,
    #[serde(rename = "sub")]
    pub subject: String,
    #[serde(rename = "auth")]
    pub method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    #[serde(default, rename = "src", skip_serializing_if = "Option::is_none")]
    pub source: Option<std::net::IpAddr>,
    #[serde(default, rename = "lvl", skip_serializing_if = "Option::is_none")]
    pub log_level: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<String>,
    #[serde(default, rename = "init")]
    pub initialized: bool,
}

impl Record {
    /// The record as Redis keeps it; `Err` with its size when over [`MAX_RECORD`] bytes
    /// (client info and capabilities are the client's to choose, subscriptions grow).
    pub fn encode(&self) -> Result<String, usize> {
        let json = serde_json::to_string(self).unwrap_or_default();
        if json.len() > MAX_RECORD {
            return Err(json.len());
        }
        Ok(json)
    }

    pub fn principal(&self) -> Principal {
        let method = match self.method.as_str() {
            "local" => AuthMethod::Local,
            "api_key" => AuthMethod::ApiKey,
            "jwt" => AuthMethod::Jwt,
            _ => AuthMethod::Anonymous,
        };
        Principal {
            subject: self.subject.clone(),
            method,
            scopes: self.scopes.iter().cloned().collect(),
            claims: self.claims.clone(),
        }
    }
}

/// One message for another replica: to a client's GET stream there, or a client's answer
/// for the replica that asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Directed {
    /// Push `m` on the GET stream of session `s`.
    Stream { s: String, m: Value },
    /// The client of session `s` answered a request this replica sent it.
    Answer { s: String, m: Value },
    /// Replica `from` resumes request stream `stream` of session `s` after `after`; events
    /// go back to it under `token`.
    Resume {
        s: String,
        stream: u64,
        after: u64,
        from: u32,
        token: String,
    },
    /// A 2026-07-28 client's retry of call `id`, held on this replica, arrived at replica
    /// `from`: continue it with `answers` (the retry's `inputResponses`; `binding` is what
    /// the retry's token was checked against) and answer under `token`.
    Continue {
        id: String,
        answers: Value,
        binding: Value,
        from: u32,
        token: String,
    },
    /// A resource watched by listen stream `key` (on the receiving replica) was updated.
    ListenUpdate { key: String, params: Value },
    /// The outcome of a [`Directed::Continue`]: `{"ok": result}` or `{"err": error}`.
    Continued { token: String, outcome: Value },
    /// One event of a resumed stream (`id`, JSON text), or its end (`end`, with why when
    /// it could not be resumed).
    Event {
        token: String,
        id: Option<String>,
        json: Option<String>,
        end: bool,
        error: Option<String>,
    },
}

/// Announced to every replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Broadcast {
    /// The session ended (DELETE): drop every copy.
    Closed { s: String },
    /// The client cancelled its request `id` (JSON), wherever it runs.
    Cancel { s: String, id: Value },
    /// The session's record changed (log level, subscriptions): copies read it again.
    Changed { s: String, from: u32 },
    /// The client sent `notifications/roots/list_changed` to replica `from`: the others tell
    /// their upstreams too.
    RootsChanged { s: String, from: u32 },
    /// A 2026-07-28 listen stream on replica `from` (its key there: `key`) watches `uris`:
    /// the others watch them too, on their own upstream sessions, and send it what comes.
    Listen {
        key: String,
        uris: Vec<String>,
        from: u32,
    },
    /// That listen stream closed.
    Unlisten { key: String, from: u32 },
}

/// The shared side of the session store.
pub struct Shared {
    pub redis: Arc<Redis>,
    /// This replica's number: random, never 0; the high half of its stream numbers.
    pub replica: u32,
    ttl: Duration,
    /// When this replica last renewed each session's record.
    renewed: DashMap<String, Instant>,
    outbox: mpsc::Sender<Outgoing>,
    /// Streams resumed here from another replica: token → where its events go.
    pub resumes: DashMap<String, mpsc::Sender<Resumed>>,
    /// Held calls continued on another replica for a retry that came here: token → where
    /// the outcome goes.
    pub continues: DashMap<String, tokio::sync::oneshot::Sender<Value>>,
    /// Continues a call held on this replica (set by the composition root: the router
    /// holds the calls, and sits above this layer).
    pub continue_held: std::sync::OnceLock<ContinueHeld>,
}

/// Continues a held call: (id, answers, binding) → the outcome as `{"ok"}` or `{"err"}`.
pub type ContinueHeld =
    Arc<dyn Fn(String, Value, Value) -> futures::future::BoxFuture<'static, Value> + Send + Sync>;

/// One event of a stream resumed from another replica.
#[derive(Debug)]
pub enum Resumed {
    Event {
        id: String,
        json: String,
    },
    /// The owner is alive and still following the stream.
    Alive,
    End(Option<String>),
}

impl Shared {
    /// The shared store, and the queue its forwarding task drains (see [`forward_loop`]).
    pub fn new(redis: Arc<Redis>, ttl: Duration) -> (Arc<Shared>, mpsc::Receiver<Outgoing>) {
        let replica = loop {
            let n: u32 = rand::random();
            if n != 0 {
                break n;
            }
        };
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let shared = Arc::new(Shared {
            redis,
            replica,
            ttl,
            renewed: DashMap::new(),
            outbox,
            resumes: DashMap::new(),
            continues: DashMap::new(),
            continue_held: std::sync::OnceLock::new(),
        });
        (shared, rx)
    }

    /// Stream numbers of this replica start here: event ids say which replica wrote them.
    pub fn stream_base(&self) -> u64 {
        u64::from(self.replica) << 32
    }

    /// The replica that wrote stream `stream`.
    pub fn replica_of(stream: u64) -> u32 {
        (stream >> 32) as u32
    }

    fn record_key(&self, id: &str) -> String {
        // The braces are a Redis Cluster hash tag: a session's keys share one slot.
        self.redis.key(&format!("session:{{{id}}}"))
    }

    fn holder_key(&self, id: &str) -> String {
        self.redis.key(&format!("session:{{{id}}}:get"))
    }

    /// The channel of replica `n`.
    pub fn replica_channel(&self, n: u32) -> String {
        self.redis.key(&format!("replica:{n}"))
    }

    /// The channel every replica listens to.
    pub fn bus_channel(&self) -> String {
        self.redis.key("bus")
    }

    /// Writes the session's record (from [`Record::encode`]), renewing its lifetime.
    pub async fn save(&self, id: &str, json: &str) -> Result<(), RedisFault> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.record_key(id))
            .arg(json)
            .arg("PX")
            .arg(self.ttl_ms());
        self.redis.run::<()>(&cmd).await?;
        self.renewed.insert(id.to_owned(), Instant::now());
        Ok(())
    }

    /// The session's record, if it is alive.
    pub async fn load(&self, id: &str) -> Result<Option<Record>, RedisFault> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.record_key(id));
        let text: Option<String> = self.redis.run(&cmd).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Renews the record's lifetime (at most once a second per replica); `Ok(false)` when
    /// the record is gone (the session ended on another replica, or expired).
    pub async fn renew(&self, id: &str) -> Result<bool, RedisFault> {
        if self
            .renewed
            .get(id)
            .is_some_and(|at| at.elapsed() < RENEW_EVERY)
        {
            return Ok(true);
        }
        let mut cmd = redis::cmd("PEXPIRE");
        cmd.arg(self.record_key(id)).arg(self.ttl_ms());
        let alive: i64 = self.redis.run(&cmd).await?;
        if alive == 1 {
            self.renewed.insert(id.to_owned(), Instant::now());
        }
        Ok(alive == 1)
    }

    /// Saves the session's record after a change and tells the replicas holding copies.
    pub async fn changed(&self, id: &str, json: &str) -> Result<(), RedisFault> {
        self.save(id, json).await?;
        self.announce(&Broadcast::Changed {
            s: id.to_owned(),
            from: self.replica,
        })
        .await
    }

    /// Forgets what this replica knew of a session it dropped.
    pub fn forget(&self, id: &str) {
        self.renewed.remove(id);
    }

    /// Ends the session everywhere: the record goes, and every replica is told.
    pub async fn delete(&self, id: &str) -> Result<(), RedisFault> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.record_key(id))
            .arg(self.holder_key(id))
            .ignore();
        pipe.cmd("PUBLISH")
            .arg(self.bus_channel())
            .arg(encode(&Broadcast::Closed { s: id.to_owned() }))
            .ignore();
        self.redis.run_pipe::<()>(&pipe).await?;
        self.forget(id);
        Ok(())
    }

    /// Records that this replica holds the session's GET stream.
    pub async fn hold_stream(&self, id: &str) -> Result<(), RedisFault> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.holder_key(id))
            .arg(self.replica)
            .arg("PX")
            .arg(self.ttl_ms());
        self.redis.run(&cmd).await
    }

    /// The GET stream held here closed: nobody holds it (unless another replica took it
    /// since).
    pub async fn release_stream(&self, id: &str) -> Result<(), RedisFault> {
        const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             return redis.call('DEL', KEYS[1]) end return 0";
        let script = redis::Script::new(RELEASE);
        let mut call = script.prepare_invoke();
        call.key(self.holder_key(id)).arg(self.replica.to_string());
        self.redis.run_script::<i64>(&call).await.map(drop)
    }

    /// Keeps the sessions whose GET stream is held here alive, with their holder keys (called
    /// periodically): a client that only listens makes no request that would renew them.
    pub async fn renew_streams(&self, ids: &[String]) -> Result<(), RedisFault> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            for key in [self.holder_key(id), self.record_key(id)] {
                pipe.cmd("PEXPIRE").arg(key).arg(self.ttl_ms()).ignore();
            }
        }
        self.redis.run_pipe(&pipe).await
    }

    /// Which replica holds the session's GET stream (0: none).
    pub async fn stream_holder(&self, id: &str) -> Result<u32, RedisFault> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.holder_key(id));
        let holder: Option<u32> = self.redis.run(&cmd).await?;
        Ok(holder.unwrap_or(0))
    }

    /// Publishes to replica `to`; `Ok(false)` when nobody listens there (it is gone).
    pub async fn direct(&self, to: u32, message: &Directed) -> Result<bool, RedisFault> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.replica_channel(to)).arg(encode(message));
        let receivers: i64 = self.redis.run(&cmd).await?;
        Ok(receivers > 0)
    }

    /// Publishes to every replica.
    pub async fn announce(&self, message: &Broadcast) -> Result<(), RedisFault> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.bus_channel()).arg(encode(message));
        self.redis.run::<i64>(&cmd).await.map(drop)
    }

    /// Queues a message for a session whose GET stream this replica does not hold: the
    /// forwarding task sends it to the replica that does, or back to `log` when none does.
    pub fn forward(&self, id: &str, log: Arc<super::events::EventLog>, msg: Message) -> bool {
        self.outbox.try_send((id.to_owned(), log, msg)).is_ok()
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// Sends what [`Shared::forward`] queued, in order: to the replica holding each session's
/// GET stream, or into the local buffer when no live replica holds it (or Redis cannot be
/// reached: the message is kept rather than lost).
pub async fn forward_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    while let Some((id, log, msg)) = rx.recv().await {
        let holder = shared.stream_holder(&id).await.unwrap_or(0);
        if holder != 0 && holder != shared.replica {
            let directed = Directed::Stream {
                s: id.clone(),
                m: serde_json::to_value(&msg).unwrap_or_default(),
            };
            if let Ok(true) = shared.direct(holder, &directed).await {
                continue;
            }
        }
        log.push(msg);
    }
}

fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// Parses a message from another replica; `None` for anything else on the channel.
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}

#[cfg(test)]
mod tests;

//! The Redis that replicas share (`redis` in gateway.yaml): one multiplexed connection per
//! process, opened on first use and reopened by itself after a fault, every operation bounded
//! by `redis.timeout`, and error texts scrubbed of the URL's password. Also the replica's
//! pub/sub subscription, which comes back with its channels after Redis does.
//!
//! Callers decide what a fault means for them: a rate limit fails open or closed, a session
//! lookup answers with a clear error; nothing here retries a command on its own.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::redis::RedisConfig;

/// How long dialing Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis operation that did not succeed, with a text fit for logs and clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisFault(pub String);

impl fmt::Display for RedisFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RedisFault {}

/// The shared Redis.
pub struct Redis {
    client: Result<redis::Client, String>,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
    /// The URL's password, scrubbed from any error text that might echo it.
    secret: Option<String>,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A handle on the Redis `config` names; nothing is contacted until the first operation.
    pub fn new(config: &RedisConfig) -> Arc<Redis> {
        let secret = url::Url::parse(&config.url)
            .ok()
            .and_then(|u| u.password().map(str::to_owned))
            .filter(|p| !p.is_empty());
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("redis is not a usable Redis URL ({:?})", e.kind()));
        Arc::new(Redis {
            client,
            connection: OnceCell::new(),
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            secret,
        })
    }

    /// `prefix:rest`: every key and channel the gateway uses starts with the prefix.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// `redis.timeout`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisFault> {
        let client = self.client.as_ref().map_err(|e| RedisFault(e.clone()))?;
        let manager = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT.min(self.timeout * 2)))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(client.clone(), config)
            })
            .await
            .map_err(|e| self.fault(e))?;
        Ok(manager.clone())
    }

    /// A Redis error as a fault, with nothing of the URL in it.
    pub fn fault(&self, e: redis::RedisError) -> RedisFault {
        let mut text = format!("redis: {e}");
        if let Some(secret) = &self.secret {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        RedisFault(text)
    }

    fn timed_out(&self) -> RedisFault {
        RedisFault(format!(
            "redis: no answer within {} ms (redis.timeout)",
            self.timeout.as_millis()
        ))
    }

    /// Runs one command within `redis.timeout`.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisFault> {
        let mut conn = self.connection().await?;
        self.timed(cmd.query_async(&mut conn)).await
    }

    /// Runs a pipeline (atomic when built with `.atomic()`) within `redis.timeout`.
    pub async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisFault> {
        let mut conn = self.connection().await?;
        self.timed(pipe.query_async(&mut conn)).await
    }

    /// Runs a Lua script (by its digest, loading it when Redis does not know it yet) within
    /// `redis.timeout`.
    pub async fn run_script<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisFault> {
        let mut conn = self.connection().await?;
        self.timed(call.invoke_async(&mut conn)).await
    }

    /// Awaits one operation for at most `redis.timeout`.
    async fn timed<T>(
        &self,
        operation: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisFault> {
        match tokio::time::timeout(self.timeout, operation).await {
            Ok(result) => result.map_err(|e| self.fault(e)),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Subscribes to `channels` for as long as `stop` is not cancelled, handing every message
    /// (channel, payload) to the returned receiver. A lost connection is reopened with a
    /// capped backoff and the channels subscribed again; messages published meanwhile are
    /// lost (pub/sub keeps nothing), which callers allow for. Faults are logged once per
    /// outage.
    pub fn subscribe(
        self: &Arc<Self>,
        channels: Vec<String>,
        stop: CancellationToken,
    ) -> mpsc::Receiver<(String, Vec<u8>)> {
        let (tx, rx) = mpsc::channel(1024);
        let redis = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            let mut reported = false;
            while !stop.is_cancelled() {
                match redis.open_subscription(&channels).await {
                    Ok(mut stream) => {
                        if reported {
                            tracing::info!("Redis subscription restored");
                        }
                        reported = false;
                        delay = Duration::from_millis(100);
                        loop {
                            let msg = tokio::select! {
                                _ = stop.cancelled() => return,
                                msg = stream.next() => msg,
                            };
                            let Some(msg) = msg else { break };
                            let channel = msg.get_channel_name().to_owned();
                            let payload = msg.get_payload_bytes().to_vec();
                            if tx.send((channel, payload)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(fault) => {
                        if !reported {
                            tracing::warn!(error = %fault, "Redis subscription lost; retrying");
                            reported = true;
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        });
        rx
    }

    async fn open_subscription(
        &self,
        channels: &[String],
    ) -> Result<redis::aio::PubSubStream, RedisFault> {
        let client = self.client.as_ref().map_err(|e| RedisFault(e.clone()))?;
        let open = async {
            let mut pubsub = client.get_async_pubsub().await?;
            for channel in channels {
                pubsub.subscribe(channel).await?;
            }
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(CONNECT_TIMEOUT.max(self.timeout), open).await {
            Ok(result) => result.map_err(|e| self.fault(e)),
            Err(_) => Err(self.timed_out()),
        }
    }
}

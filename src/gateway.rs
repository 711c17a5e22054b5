//! The composition root: builds every part of the gateway from the configuration, in layer
//! order, and holds what the client faces need.
//!
//! Nothing below this module knows `Gateway`: each part is given the handles it needs when
//! it is built (the upstream table, the session store, the relay, the task state), so a
//! layer can be read and tested with only the layers under it. The faces (`downstream`) take
//! the gateway whole because they need several parts at once: the pipeline to run requests
//! through, the session store, the relay for answers to server→client requests, the
//! authenticator, metrics and the shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::aggregate::merge::Naming;
use crate::aggregate::seal::Sealer;
use crate::config::Config;
use crate::pipeline::auth::Authenticator;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::{Hooks, Parts, Pipeline};
use crate::relay::Relay;
use crate::router::Router;
use crate::session::SessionStore;
use crate::tasks::{TaskParts, Tasks};
use crate::upstream::Upstreams;
use crate::upstream::supervisor::Supervisor;

/// Upstream events queued for the relay's event loop.
const EVENT_QUEUE: usize = 1024;
/// How often idle sessions are looked for.
const REAP_EVERY: Duration = Duration::from_secs(15);

pub struct Gateway {
    pub config: Arc<Config>,
    /// The upstreams and their merged catalog.
    pub upstreams: Arc<Upstreams>,
    /// Handshake-era client sessions.
    pub sessions: Arc<SessionStore>,
    /// The way back: what upstreams send to clients, and clients' answers to it.
    pub relay: Arc<Relay>,
    /// The middleware stages every client request walks, ending in the router.
    pub pipeline: Pipeline,
    /// Prometheus metrics, served at `metrics.path`.
    pub metrics: Arc<Metrics>,
    /// Credential checks for the HTTP faces; `None` when `auth` configures none.
    pub auth: Option<Arc<Authenticator>>,
    /// Cancelled when the gateway starts shutting down: streams end, no new work starts.
    pub shutdown: CancellationToken,
    /// Cancelled after requests drained: the supervisors close their upstreams.
    stop: CancellationToken,
    supervisors: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Gateway {
    /// Builds the gateway and starts one supervisor per upstream plus the relay's loop.
    pub fn start(config: Config) -> Arc<Gateway> {
        Self::start_with(config, &Hooks::default())
    }

    /// [`Gateway::start`] with test seams (see [`Hooks`]).
    pub fn start_with(config: Config, hooks: &Hooks) -> Arc<Gateway> {
        let config = Arc::new(config);
        let shutdown = CancellationToken::new();
        let sealer = Arc::new(match config.seal_key {
            Some(key) => Sealer::new(key),
            None => Sealer::random(),
        });
        let naming = Naming {
            separator: config.separator.clone(),
            max_len: config.max_name_length,
            collisions: config.collisions,
        };
        let upstreams = Arc::new(Upstreams::new(&config.upstreams, naming));
        let sessions = Arc::new(SessionStore::new(config.session_idle_timeout));
        let store = crate::tasks::store_for(&config.tasks);
        let relay = Relay::new(
            upstreams.clone(),
            sessions.clone(),
            store.clone(),
            shutdown.clone(),
        );
        let auth = Authenticator::new(&config.auth, &config.path);
        let router = Arc::new(Router {
            config: config.clone(),
            upstreams: upstreams.clone(),
            relay: relay.clone(),
            sealer: sealer.clone(),
            parked: Default::default(),
            per_principal: auth.is_some() || !config.policy.rules.is_empty(),
            shutdown: shutdown.clone(),
        });
        let tasks = Tasks::new(TaskParts {
            config: config.tasks.clone(),
            store,
            upstreams: upstreams.clone(),
            sessions: sessions.clone(),
            relay: relay.clone(),
            sealer,
            page_size: config.page_size,
        });
        let metrics = Arc::new(Metrics::default());
        let pipeline = Pipeline::build(
            &config,
            Parts {
                upstreams: upstreams.clone(),
                metrics: metrics.clone(),
                hooks: hooks.clone(),
                tasks: tasks.stage(),
                terminal: router,
            },
        );
        tracing::debug!(stages = ?pipeline.names(), "Pipeline");
        let gateway = Arc::new(Gateway {
            config,
            upstreams,
            sessions,
            relay,
            pipeline,
            metrics,
            auth,
            shutdown,
            stop: CancellationToken::new(),
            supervisors: std::sync::Mutex::new(Vec::new()),
        });
        gateway.start_upstreams();
        tokio::spawn(reap_task(gateway.clone()));
        gateway
    }

    /// Starts one supervisor per upstream, each feeding the relay.
    fn start_upstreams(&self) {
        for (index, upstream) in self.upstreams.iter().enumerate() {
            let relay = Arc::downgrade(&self.relay);
            upstream.set_hook(Arc::new(move |n, origin| {
                relay
                    .upgrade()
                    .is_some_and(|relay| crate::relay::consume(&relay, index, n, origin))
            }));
        }
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let http = http_client();
        let handles = self
            .upstreams
            .iter()
            .enumerate()
            .map(|(index, upstream)| {
                let supervisor = Supervisor {
                    upstream: upstream.clone(),
                    index,
                    events: tx.clone(),
                    http: http.clone(),
                    shutdown: self.stop.clone(),
                };
                tokio::spawn(supervisor.run())
            })
            .collect();
        *self.supervisors.lock().unwrap_or_else(|p| p.into_inner()) = handles;
        tokio::spawn(crate::relay::run(self.relay.clone(), rx));
    }

    /// Closes every upstream (stdio children: stdin closed, a grace period, then kill) and
    /// waits for the supervisors to finish.
    pub async fn stop_upstreams(&self) {
        self.shutdown.cancel();
        for upstream in self.upstreams.iter() {
            upstream.links.close_all().await;
        }
        self.stop.cancel();
        let handles =
            std::mem::take(&mut *self.supervisors.lock().unwrap_or_else(|p| p.into_inner()));
        let limit = crate::upstream::stdio::STOP_GRACE + Duration::from_secs(2);
        if tokio::time::timeout(limit, futures::future::join_all(handles))
            .await
            .is_err()
        {
            tracing::warn!("Some upstreams did not stop in time");
        }
    }

    /// Whether every upstream is ready and no name collides: what `/readyz` reports, with
    /// the number of open sessions.
    pub fn readiness(&self) -> (bool, Value) {
        let (ready, mut details) = self.upstreams.readiness();
        details["sessions"] = Value::from(self.sessions.len());
        (ready, details)
    }
}

/// One HTTP client for every upstream: connections and TLS sessions are reused.
fn http_client() -> reqwest::Client {
    crate::net::client("upstreams", |builder| {
        builder
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("manifold/", env!("CARGO_PKG_VERSION")))
    })
}

async fn reap_task(gateway: Arc<Gateway>) {
    // Often enough that a short idle timeout is honoured closely, never busier than 10 Hz.
    let every =
        (gateway.config.session_idle_timeout / 2).clamp(Duration::from_millis(100), REAP_EVERY);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let gone = gateway.sessions.reap();
                if !gone.is_empty() {
                    tracing::info!(sessions = gone.len(), "Expired idle sessions");
                }
                for id in gone {
                    crate::relay::session_closed(&gateway.relay, &id).await;
                }
            }
            _ = gateway.shutdown.cancelled() => return,
        }
    }
}

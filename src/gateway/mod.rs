//! The composition root: builds every part of the gateway from the configuration, in layer
//! order, and holds what the client faces need.
//!
//! Nothing below this module knows `Gateway`: each part is given the handles it needs when
//! it is built (the upstream table, the session store, the relay, the task state), so a
//! layer can be read and tested with only the layers under it. The faces (`downstream`) take
//! the gateway whole because they need several parts at once: the pipeline to run requests
//! through, the session store, the relay for answers to server→client requests, the
//! authenticator, metrics and the shutdown signal.
//!
//! A configuration reload ([`reload`]) swaps what may change while serving: the
//! configuration the faces read, the pipeline (with its router) and the authenticator, each
//! as one pointer, so a request sees the old settings or the new, never a mix; and it starts,
//! drains and stops upstreams in the table.

mod reload;

use crate::net::redis::Redis;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
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
use crate::upstream::supervisor::{Supervisor, UpstreamEvent};

pub use reload::{Applied, Reloaded};

/// Upstream events queued for the relay's event loop.
const EVENT_QUEUE: usize = 1024;
/// How often idle sessions are looked for.
const REAP_EVERY: Duration = Duration::from_secs(15);

pub struct Gateway {
    /// The configuration in force: the one loaded at start, then each reload's (with the
    /// settings that need a restart kept as they were).
    config: ArcSwap<Config>,
    /// The upstreams and their merged catalog.
    pub upstreams: Arc<Upstreams>,
    /// Handshake-era client sessions.
    pub sessions: Arc<SessionStore>,
    /// The way back: what upstreams send to clients, and clients' answers to it.
    pub relay: Arc<Relay>,
    /// The middleware stages every client request walks, ending in the router.
    pipeline: ArcSwap<Pipeline>,
    /// Prometheus metrics, served at `metrics.path`.
    pub metrics: Arc<Metrics>,
    /// Credential checks for the HTTP faces; `None` when `auth` configures none.
    auth: ArcSwapOption<Authenticator>,
    /// Cancelled when the gateway starts shutting down: `/readyz` turns 503, new sessions
    /// are refused, streams end, no new work starts.
    pub shutdown: CancellationToken,
    /// Cancelled after requests drained: the supervisors close their upstreams.
    stop: CancellationToken,
    /// The running supervisors, by upstream index.
    supervisors: Mutex<HashMap<usize, Running>>,
    /// What a rebuild of the pipeline or a new supervisor needs.
    parts: Rebuild,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

/// A supervisor and the token that stops it alone.
struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// The parts that outlive a reload, kept to build the pipeline and supervisors again.
struct Rebuild {
    hooks: Hooks,
    tasks: Arc<Tasks>,
    sealer: Arc<Sealer>,
    parked: Arc<crate::router::mrtr::Parked>,
    events: mpsc::Sender<UpstreamEvent>,
    http: reqwest::Client,
    /// The shared Redis (`redis`), opened at start; a reload does not change it.
    redis: Option<Arc<Redis>>,
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
        let buffers = crate::session::budget::Buffers::new(
            config.buffers.session_bytes,
            config.buffers.total_bytes,
        );
        let sessions = Arc::new(SessionStore::with_limits(
            config.session_idle_timeout,
            config.sessions.clone(),
            buffers,
        ));
        let store = crate::tasks::store_for(&config.tasks);
        let relay = Relay::new(
            upstreams.clone(),
            sessions.clone(),
            store.clone(),
            shutdown.clone(),
        );
        let tasks = Tasks::new(TaskParts {
            config: config.tasks.clone(),
            store,
            upstreams: upstreams.clone(),
            sessions: sessions.clone(),
            relay: relay.clone(),
            sealer: sealer.clone(),
            page_size: config.page_size,
        });
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let parts = Rebuild {
            hooks: hooks.clone(),
            tasks,
            sealer,
            parked: Default::default(),
            events,
            http: crate::net::upstream_client(),
            redis: config.redis.as_ref().map(Redis::new),
        };
        let metrics = Arc::new(Metrics::default());
        let (pipeline, auth) =
            build_pipeline(&config, &parts, &upstreams, &relay, &metrics, &shutdown);
        let gateway = Arc::new(Gateway {
            config: ArcSwap::new(config),
            upstreams,
            sessions,
            relay,
            pipeline: ArcSwap::from_pointee(pipeline),
            metrics,
            auth: ArcSwapOption::new(auth),
            shutdown,
            stop: CancellationToken::new(),
            supervisors: Mutex::new(HashMap::new()),
            parts,
            reloading: tokio::sync::Mutex::new(()),
        });
        for (index, upstream) in gateway.upstreams.indexed() {
            gateway.supervise(index, upstream);
        }
        tokio::spawn(crate::relay::run(gateway.relay.clone(), rx));
        tokio::spawn(reap_task(gateway.clone()));
        if let Some(redis) = &gateway.parts.redis {
            gateway.share_sessions(redis.clone());
        }
        gateway
    }

    /// Replicas naming the same Redis serve each other's sessions: the session store keeps
    /// records there, and this replica listens for what the others send it.
    fn share_sessions(self: &Arc<Self>, redis: Arc<Redis>) {
        let ttl = self.config().session_idle_timeout;
        let (shared, outbox) = crate::session::shared::Shared::new(redis, ttl);
        tracing::info!(replica = shared.replica, "Sessions shared through Redis");
        self.sessions.share(shared.clone());
        self.relay.client_requests.set_replica(shared.replica);
        self.parts.parked.set_replica(shared.replica);
        // A retry of a call held here may reach another replica, which asks this one to
        // continue it.
        let gateway = Arc::downgrade(self);
        let continue_held: crate::session::shared::ContinueHeld = Arc::new(
            move |id, answers, binding| {
                let gateway = gateway.clone();
                Box::pin(async move {
                    let Some(gw) = gateway.upgrade() else {
                        return serde_json::json!({ "err": crate::protocol::ErrorObject::internal("the replica is stopping") });
                    };
                    let config = gw.config();
                    let authenticated = gw.auth().is_some();
                    let router = router(
                        &config,
                        &gw.parts,
                        &gw.upstreams,
                        &gw.relay,
                        &gw.shutdown,
                        authenticated,
                    );
                    crate::router::mrtr::continue_held(&router, &id, answers, binding).await
                })
            },
        );
        let _ = shared.continue_held.set(continue_held);
        tokio::spawn(crate::session::shared::forward_loop(shared.clone(), outbox));
        tokio::spawn(crate::relay::bus::run(
            self.relay.clone(),
            shared.clone(),
            self.stop.clone(),
        ));
        let gateway = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_secs(1)));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let held = gateway.sessions.with_readers();
                        if let Err(e) = shared.renew_streams(&held).await {
                            tracing::warn!(error = %e, "Could not renew the streams held here");
                        }
                    }
                    _ = gateway.stop.cancelled() => return,
                }
            }
        });
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The pipeline in force; a request keeps the one it started with.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.pipeline.load_full()
    }

    /// The authenticator in force, if `auth` configures one.
    pub fn auth(&self) -> Option<Arc<Authenticator>> {
        self.auth.load_full()
    }

    /// Whether the gateway is shutting down (draining): not ready, no new sessions.
    pub fn draining(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Starts the supervisor of the upstream at `index`, feeding the relay.
    fn supervise(&self, index: usize, upstream: Arc<crate::upstream::Upstream>) {
        let relay = Arc::downgrade(&self.relay);
        upstream.set_hook(Arc::new(move |n, origin| {
            relay
                .upgrade()
                .is_some_and(|relay| crate::relay::consume(&relay, index, n, origin))
        }));
        let stop = self.stop.child_token();
        let supervisor = Supervisor {
            upstream,
            index,
            events: self.parts.events.clone(),
            http: self.parts.http.clone(),
            shutdown: stop.clone(),
        };
        let handle = tokio::spawn(supervisor.run());
        lock(&self.supervisors).insert(index, Running { stop, handle });
    }

    /// Closes every upstream (stdio children: stdin closed, a grace period, then kill) and
    /// waits for the supervisors to finish.
    pub async fn stop_upstreams(&self) {
        self.shutdown.cancel();
        for upstream in self.upstreams.iter() {
            upstream.links.close_all().await;
        }
        self.stop.cancel();
        let handles: Vec<_> = std::mem::take(&mut *lock(&self.supervisors))
            .into_values()
            .map(|r| r.handle)
            .collect();
        let limit = crate::upstream::stdio::STOP_GRACE + Duration::from_secs(2);
        if tokio::time::timeout(limit, futures::future::join_all(handles))
            .await
            .is_err()
        {
            tracing::warn!("Some upstreams did not stop in time");
        }
    }

    /// Whether every upstream is ready and no name collides: what `/readyz` reports, with
    /// the number of open sessions. Never ready while draining.
    pub fn readiness(&self) -> (bool, Value) {
        let (ready, mut details) = self.upstreams.readiness();
        details["sessions"] = Value::from(self.sessions.len());
        if self.draining() {
            details["ready"] = Value::Bool(false);
            details["draining"] = Value::Bool(true);
            return (false, details);
        }
        (ready, details)
    }
}

/// The pipeline for `config`, ending in a router built for it, and the authenticator the
/// HTTP faces check credentials with.
fn build_pipeline(
    config: &Arc<Config>,
    parts: &Rebuild,
    upstreams: &Arc<Upstreams>,
    relay: &Arc<Relay>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> (Pipeline, Option<Arc<Authenticator>>) {
    let auth = Authenticator::new(&config.auth, &config.path);
    let router = Arc::new(router(
        config,
        parts,
        upstreams,
        relay,
        shutdown,
        auth.is_some(),
    ));
    let pipeline = Pipeline::build(
        config,
        Parts {
            upstreams: upstreams.clone(),
            metrics: metrics.clone(),
            hooks: parts.hooks.clone(),
            redis: parts.redis.clone(),
            tasks: parts.tasks.stage(),
            terminal: router,
        },
    );
    tracing::debug!(stages = ?pipeline.names(), "Pipeline");
    (pipeline, auth)
}

/// The pipeline's terminal.
fn router(
    config: &Arc<Config>,
    parts: &Rebuild,
    upstreams: &Arc<Upstreams>,
    relay: &Arc<Relay>,
    shutdown: &CancellationToken,
    authenticated: bool,
) -> Router {
    Router {
        config: config.clone(),
        upstreams: upstreams.clone(),
        relay: relay.clone(),
        sealer: parts.sealer.clone(),
        parked: parts.parked.clone(),
        per_principal: authenticated || !config.policy.rules.is_empty(),
        shutdown: shutdown.clone(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

async fn reap_task(gateway: Arc<Gateway>) {
    // Often enough that a short idle timeout is honoured closely, never busier than 10 Hz.
    let shortest = gateway
        .config()
        .session_idle_timeout
        .min(gateway.config().sessions.unused_timeout);
    let every = (shortest / 2).clamp(Duration::from_millis(100), REAP_EVERY);
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

//! The gateway's shared state: upstreams, the merged catalog, sessions, and the task that
//! keeps the catalog in step with the upstreams and tells clients when it changes.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::aggregate::merge::{Catalog, Input, Naming};
use crate::aggregate::seal::Sealer;
use crate::config::Config;
use crate::router::progress::ProgressTable;
use crate::session::SessionStore;
use crate::upstream::supervisor::Supervisor;
use crate::upstream::{Status, Upstream};

/// Upstream events queued for the catalog task.
const EVENT_QUEUE: usize = 1024;
/// How often idle sessions are looked for.
const REAP_EVERY: Duration = Duration::from_secs(15);

pub struct Gateway {
    pub config: Arc<Config>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub sessions: SessionStore,
    pub sealer: Sealer,
    /// Progress tokens of requests in flight, gateway token → client token and stream.
    pub progress: Arc<ProgressTable>,
    /// Routing state for what upstreams send back (server→client requests, subscriptions).
    pub relay: crate::relay::Relay,
    /// Calls held for 2026-07-28 clients until they retry with the input asked for.
    pub parked: crate::router::mrtr::Parked,
    /// Tasks: the store, and the calls this replica runs as tasks.
    pub tasks: crate::tasks::Tasks,
    /// The gateway itself, for work that outlives a request (a task's background call).
    me: std::sync::Weak<Gateway>,
    /// The middleware stages every client request walks (see `crate::pipeline`).
    pub pipeline: crate::pipeline::Pipeline,
    /// Prometheus metrics, served at `metrics.path`.
    pub metrics: Arc<crate::pipeline::metrics::Metrics>,
    /// Credential checks for the HTTP faces; `None` when `auth` configures none.
    pub auth: Option<Arc<crate::pipeline::auth::Authenticator>>,
    /// Cancelled when the gateway starts shutting down: streams end, no new work starts.
    pub shutdown: CancellationToken,
    /// Cancelled after requests drained: the supervisors close their upstreams.
    stop: CancellationToken,
    supervisors: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    catalog: RwLock<Arc<Catalog>>,
    naming: Naming,
}

impl Gateway {
    /// A counted handle on the gateway, for background work.
    pub fn arc(&self) -> Arc<Gateway> {
        self.me
            .upgrade()
            .expect("the gateway is alive while its methods run")
    }

    /// Builds the gateway and starts one supervisor per upstream plus the catalog task.
    pub fn start(config: Config) -> Arc<Gateway> {
        Self::start_with(config, &crate::pipeline::Hooks::default())
    }

    /// [`Gateway::start`] with test seams (see [`crate::pipeline::Hooks`]).
    pub fn start_with(config: Config, hooks: &crate::pipeline::Hooks) -> Arc<Gateway> {
        // reqwest is built without a default TLS provider; install ring's once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sealer = match config.seal_key {
            Some(key) => Sealer::new(key),
            None => Sealer::random(),
        };
        let naming = Naming {
            separator: config.separator.clone(),
            max_len: config.max_name_length,
            collisions: config.collisions,
        };
        let upstreams = config
            .upstreams
            .iter()
            .cloned()
            .map(|u| Arc::new(Upstream::new(u)))
            .collect();
        let metrics = Arc::new(crate::pipeline::metrics::Metrics::default());
        let pipeline = crate::pipeline::Pipeline::build(&config, &metrics, hooks);
        tracing::debug!(stages = ?pipeline.names(), "Pipeline");
        let gateway = Arc::new_cyclic(|me| Gateway {
            me: me.clone(),
            tasks: crate::tasks::Tasks::new(config.tasks.clone()),
            auth: crate::pipeline::auth::Authenticator::new(&config.auth, &config.path),
            pipeline,
            metrics,
            sessions: SessionStore::new(config.session_idle_timeout),
            config: Arc::new(config),
            upstreams,
            sealer,
            progress: Arc::default(),
            relay: crate::relay::Relay::default(),
            parked: Default::default(),
            shutdown: CancellationToken::new(),
            stop: CancellationToken::new(),
            supervisors: std::sync::Mutex::new(Vec::new()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            naming,
        });
        for (index, upstream) in gateway.upstreams.iter().enumerate() {
            let weak = Arc::downgrade(&gateway);
            upstream.set_hook(Arc::new(move |n, origin| {
                weak.upgrade()
                    .is_some_and(|gw| crate::relay::consume(&gw, index, n, origin))
            }));
        }
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let http = http_client();
        let mut handles = Vec::with_capacity(gateway.upstreams.len());
        for (index, upstream) in gateway.upstreams.iter().enumerate() {
            let supervisor = Supervisor {
                upstream: upstream.clone(),
                index,
                events: tx.clone(),
                http: http.clone(),
                shutdown: gateway.stop.clone(),
            };
            handles.push(tokio::spawn(supervisor.run()));
        }
        *gateway
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = handles;
        tokio::spawn(crate::relay::run(gateway.clone(), rx));
        tokio::spawn(reap_task(gateway.clone()));
        gateway
    }

    /// Closes every upstream (stdio children: stdin closed, a grace period, then kill) and
    /// waits for the supervisors to finish.
    pub async fn stop_upstreams(&self) {
        self.shutdown.cancel();
        for upstream in &self.upstreams {
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

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn rebuild_catalog(&self) -> (Arc<Catalog>, Arc<Catalog>) {
        // Each tool is listed with what the gateway will do for it as a task.
        type Support<'u> = Box<dyn Fn(&Value) -> &'static str + 'u>;
        let supports: Vec<Support<'_>> = self
            .upstreams
            .iter()
            .map(|u| {
                Box::new(move |tool: &Value| crate::tasks::listed_support(u, tool)) as Support<'_>
            })
            .collect();
        let inputs: Vec<Input<'_>> = self
            .upstreams
            .iter()
            .enumerate()
            .map(|(index, u)| Input {
                index,
                name: u.name(),
                prefix: &u.config.prefix,
                catalog: u.catalog(),
                task_support: Some(&*supports[index]),
            })
            .collect();
        let next = Arc::new(Catalog::build(&inputs, &self.naming));
        for c in &next.collisions {
            match &c.served_by {
                Some(winner) => {
                    tracing::warn!(name = %c.name, upstreams = ?c.upstreams, served_by = %winner, "Name collision resolved by first_wins")
                }
                None => {
                    tracing::error!(name = %c.name, upstreams = ?c.upstreams, "Name collision: withheld from every upstream (collisions: error)")
                }
            }
        }
        let mut slot = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let previous = std::mem::replace(&mut *slot, next.clone());
        (previous, next)
    }

    /// Whether every upstream is ready and no name collides: what `/readyz` reports.
    pub fn readiness(&self) -> (bool, Value) {
        let mut all_ready = true;
        let mut upstreams = Map::new();
        for u in &self.upstreams {
            let status = u.status();
            all_ready &= matches!(status, Status::Ready { .. });
            let mut entry =
                json!({ "status": status.label(), "transport": u.config.transport.kind() });
            if let Status::Down {
                error, failures, ..
            } = &status
            {
                entry["error"] = json!(error);
                entry["failures"] = json!(failures);
            }
            if let Some(info) = u.server_info() {
                entry["protocolVersion"] = json!(info.protocol_version);
                entry["serverInfo"] = info.server_info;
            }
            upstreams.insert(u.name().to_owned(), entry);
        }
        // One snapshot for both answers, so they cannot disagree.
        let catalog = self.catalog();
        let collisions: Vec<Value> = catalog
            .collisions
            .iter()
            .map(|c| json!({ "name": c.name, "list": c.kind.method(), "upstreams": c.upstreams, "servedBy": c.served_by }))
            .collect();
        let unresolved = catalog.collisions.iter().any(|c| c.served_by.is_none());
        let ready = all_ready && !unresolved;
        (
            ready,
            json!({ "ready": ready, "upstreams": upstreams, "collisions": collisions, "sessions": self.sessions.len() }),
        )
    }

    /// Waits until every upstream has either become ready or failed at least once, at most
    /// `limit`: used by `manifold tools`.
    pub async fn settle(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let settled = self
                .upstreams
                .iter()
                .all(|u| !matches!(u.status(), Status::Starting));
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One HTTP client for every upstream: connections and TLS sessions are reused.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("manifold/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "Could not build the configured HTTP client; using defaults");
            reqwest::Client::new()
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
                    crate::relay::session_closed(&gateway, &id).await;
                }
            }
            _ = gateway.shutdown.cancelled() => return,
        }
    }
}

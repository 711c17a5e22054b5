//! Upstream MCP servers: one supervised connection each, its handshake, and its catalog.
//!
//! An [`Upstream`] is the gateway's handle on one configured server. Its supervisor task
//! (see [`supervisor`]) connects, initializes, fetches the catalog, watches the connection,
//! and reconnects with capped backoff when it drops; the router only ever calls
//! [`Upstream::request`], which fails fast with a clear error while the upstream is down.

pub mod catalog;
pub mod circuit;
pub mod connect;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod h1;
pub mod http;
pub mod links;
pub mod listen;
pub mod peer;
pub mod reaper;
pub mod sse;
pub mod sse_read;
mod stateless;
pub mod stdio;
pub mod supervisor;
pub mod table;
pub mod tasks;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::{ProtocolMode, UpstreamConfig};
use crate::protocol::arguments::Params;
use crate::protocol::{Era, ErrorObject, Message, Payload, methods};
pub use catalog::UpstreamCatalog;
use peer::{Inbound, Origin, Peer};
pub use table::Upstreams;

/// Largest single message accepted from an upstream (a line on stdio, a body or SSE event on
/// HTTP). Bounded so one misbehaving server cannot exhaust the gateway's memory.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Messages queued towards one upstream before senders wait.
pub const OUTBOUND_QUEUE: usize = 256;
/// Messages queued from one upstream before its reader waits (backpressure on the server).
pub const INBOUND_QUEUE: usize = 256;

/// A live transport: channels for messages, and how to close it.
pub struct Connection {
    pub outbound: mpsc::Sender<Message>,
    pub inbound: mpsc::Receiver<Inbound>,
    pub closer: Closer,
    /// Set for Streamable HTTP, which needs to learn the negotiated version.
    pub http: Option<Arc<http::HttpLink>>,
}

pub enum Closer {
    Stdio(stdio::StdioCloser),
    Http(Arc<http::HttpLink>),
    Sse(sse::SseCloser),
}

impl Closer {
    pub async fn close(self) {
        match self {
            Closer::Stdio(c) => c.close().await,
            Closer::Http(link) => link.close().await,
            Closer::Sse(c) => c.close().await,
        }
    }
}

/// What the handshake told us about the server.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub protocol_version: String,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
    /// Every revision the server says it speaks: a `DiscoverResult`'s `supportedVersions`;
    /// for a server opened with `initialize`, the one revision it answered.
    pub revisions: Vec<String>,
}

impl ServerInfo {
    /// Whether the server declared a top-level capability such as `tools`.
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities
            .get(capability)
            .is_some_and(|v| !v.is_null())
    }

    /// The era the server speaks: stateless when it was opened with `server/discover`.
    pub fn era(&self) -> Era {
        Era::of(&self.protocol_version).unwrap_or(Era::Handshake)
    }

    /// Whether the server says it speaks some revision of `era` that the gateway speaks.
    pub fn speaks(&self, era: Era) -> bool {
        self.revisions.iter().any(|r| era.speaks(r))
    }
}

/// Health of an upstream, as `/readyz` and `manifold tools` report it.
#[derive(Debug, Clone)]
pub enum Status {
    Starting,
    Ready {
        since: Instant,
    },
    Down {
        error: String,
        since: Instant,
        failures: u32,
    },
    Stopped,
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Ready { .. } => "ready",
            Status::Down { .. } => "down",
            Status::Stopped => "stopped",
        }
    }
}

struct Live {
    peer: Arc<Peer>,
    info: ServerInfo,
    /// A dual-era server's handshake-era session, beside the stateless one (`peer`): its
    /// handshake-era clients are served on it when they have no link of their own, and its
    /// handshake-era catalog is read on it.
    handshake: Option<Side>,
}

/// The second shared session of a dual-era upstream.
struct Side {
    peer: Arc<Peer>,
    info: ServerInfo,
}

pub struct Upstream {
    pub config: UpstreamConfig,
    /// Per-client upstream sessions, for upstreams that get one per client.
    pub links: links::Links,
    /// How the gateway consumes this upstream's notifications in arrival order.
    hook: std::sync::OnceLock<peer::NotificationHook>,
    live: RwLock<Option<Arc<Live>>>,
    status: RwLock<Status>,
    catalog: RwLock<Arc<UpstreamCatalog>>,
    /// A dual-era server's handshake-era catalog, read on its handshake-era session; `None`
    /// for a server of one era (or pinned to one), whose one catalog serves both.
    handshake_catalog: RwLock<Option<Arc<UpstreamCatalog>>>,
    /// Times the connection was lost or could not be opened (for `/metrics`).
    failures: std::sync::atomic::AtomicU64,
    /// The era the last successful opening found (and, for a stateless server, what its
    /// `server/discover` said); reconnects use it without probing, and forget it when
    /// opening in it fails.
    remembered: std::sync::Mutex<Option<(Era, Option<ServerInfo>)>>,
    /// What the upstream's `subscriptions/listen` must deliver beyond list changes.
    pub listen: listen::ListenSet,
    /// The level clients asked for with `logging/setLevel`, sent as `logLevel` on requests
    /// to a stateless upstream whose client named none.
    log_level: std::sync::Mutex<Option<String>>,
    /// Removed (or replaced) by a configuration reload: out of the catalog, draining.
    retired: std::sync::atomic::AtomicBool,
    /// Requests sent and not yet answered, for draining before a stop.
    in_flight: std::sync::atomic::AtomicUsize,
    /// Stops requests to an upstream that keeps failing (`circuit`).
    pub circuit: circuit::Circuit,
}

/// Counts one request in flight for as long as it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Upstream {
    pub fn new(config: UpstreamConfig) -> Self {
        Self {
            links: links::Links::default(),
            hook: std::sync::OnceLock::new(),
            live: RwLock::new(None),
            status: RwLock::new(Status::Starting),
            catalog: RwLock::new(Arc::new(UpstreamCatalog::empty())),
            handshake_catalog: RwLock::new(None),
            failures: std::sync::atomic::AtomicU64::new(0),
            remembered: std::sync::Mutex::new(None),
            listen: listen::ListenSet::default(),
            log_level: std::sync::Mutex::new(None),
            retired: std::sync::atomic::AtomicBool::new(false),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            circuit: circuit::Circuit::new(config.circuit),
            config,
        }
    }

    /// Takes the upstream out of service (a reload removed or replaced it): it leaves the
    /// catalog at the next rebuild, and new requests to it fail with the reason.
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Requests sent to the upstream and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits, at most `limit`, until no request to the upstream is in flight.
    pub async fn drained(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.in_flight() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// How the next connection opens: in the configured era, else in the remembered one,
    /// else with a probe. A stateless server already discovered is resumed without a request.
    pub fn opening(&self) -> connect::Opening {
        let remembered = lock(&self.remembered).clone();
        if let Some((Era::Stateless, Some(info))) = &remembered
            && self.config.protocol != ProtocolMode::Handshake
        {
            return connect::Opening::Resume(Box::new(info.clone()));
        }
        match self.config.protocol {
            ProtocolMode::Handshake => connect::Opening::In(Era::Handshake),
            ProtocolMode::Stateless => connect::Opening::In(Era::Stateless),
            ProtocolMode::Auto => match remembered {
                Some((era, _)) => connect::Opening::In(era),
                None => connect::Opening::Probe,
            },
        }
    }

    /// Whether the next opening relies on what an earlier connection found.
    pub fn remembers(&self) -> bool {
        lock(&self.remembered).is_some()
    }

    /// Remembers what an opening found (`None`: forgets it).
    pub fn remember(&self, found: Option<(Era, Option<ServerInfo>)>) {
        *lock(&self.remembered) = found;
    }

    /// Whether requests go to this upstream in the 2026-07-28 era: what the live connection
    /// speaks, else what is remembered or configured.
    pub fn era(&self) -> Era {
        if let Some(live) = read(&self.live).as_ref() {
            return live.info.era();
        }
        match self.opening() {
            connect::Opening::In(Era::Stateless) | connect::Opening::Resume(_) => Era::Stateless,
            _ => Era::Handshake,
        }
    }

    /// Installs the notification hook every connection of this upstream will use.
    pub fn set_hook(&self, hook: peer::NotificationHook) {
        let _ = self.hook.set(hook);
    }

    pub fn hook(&self) -> Option<peer::NotificationHook> {
        self.hook.get().cloned()
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn status(&self) -> Status {
        read(&self.status).clone()
    }

    /// What the server said in its handshake, while it is connected.
    pub fn server_info(&self) -> Option<ServerInfo> {
        read(&self.live).as_ref().map(|l| l.info.clone())
    }

    /// Whether the connected server declared a top-level capability, without copying its
    /// handshake (the per-request checks use this); `None` while it is not connected.
    pub fn declares(&self, capability: &str) -> Option<bool> {
        read(&self.live).as_ref().map(|l| l.info.has(capability))
    }

    /// [`Upstream::declares_at`] on the session clients of `era` reach: a dual-era server's
    /// handshake-era session for that era, else the live one.
    pub fn declares_at_in(&self, era: Era, pointer: &str) -> bool {
        let live = read(&self.live);
        let Some(live) = live.as_ref() else {
            return false;
        };
        let info = match (era, &live.handshake) {
            (Era::Handshake, Some(side)) => &side.info,
            _ => &live.info,
        };
        info.capabilities
            .pointer(pointer)
            .is_some_and(|v| !v.is_null())
    }

    /// Whether the connected server's capabilities hold something at a JSON pointer
    /// (`/tasks/requests/tools/call`, `/extensions/io.modelcontextprotocol~1tasks`).
    pub fn declares_at(&self, pointer: &str) -> bool {
        read(&self.live)
            .as_ref()
            .and_then(|l| l.info.capabilities.pointer(pointer))
            .is_some_and(|v| !v.is_null())
    }

    /// The catalog the upstream serves in its own (first) era.
    pub fn catalog(&self) -> Arc<UpstreamCatalog> {
        read(&self.catalog).clone()
    }

    /// The catalog a client of `era` sees: a dual-era server's own catalog of that era, else
    /// the one catalog it has (served across eras).
    pub fn catalog_for(&self, era: Era) -> Arc<UpstreamCatalog> {
        match (era, read(&self.handshake_catalog).as_ref()) {
            (Era::Handshake, Some(catalog)) => catalog.clone(),
            _ => self.catalog(),
        }
    }

    /// The revision of a dual-era server's handshake-era session (`None` for a server served
    /// in one era).
    pub fn handshake_version(&self) -> Option<String> {
        let live = read(&self.live);
        let side = live.as_ref()?.handshake.as_ref()?;
        Some(side.info.protocol_version.clone())
    }

    /// The era a client of `era` reaches this upstream in: its own, where the upstream
    /// speaks both, else the upstream's.
    pub fn served_in(&self, era: Era) -> Era {
        if era == Era::Handshake && self.dual() {
            Era::Handshake
        } else {
            self.era()
        }
    }

    /// Whether the upstream serves both eras on sessions of their own (a dual-era server
    /// found by the probe, with its handshake-era session open).
    pub fn dual(&self) -> bool {
        read(&self.live)
            .as_ref()
            .is_some_and(|l| l.handshake.is_some())
    }

    /// Sends a request to the server, with the upstream's configured timeout.
    ///
    /// An HTTP upstream that answers 404 has forgotten the gateway's session without seeing
    /// the request; the supervisor re-initializes at once, and the request is sent again,
    /// once, on the new session, so clients do not see the upstream's restart.
    pub async fn request(
        &self,
        origin: Option<Arc<Origin>>,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, ErrorObject> {
        self.request_within(origin, method, params, self.config.timeout)
            .await
            .map(Payload::into_value)
    }

    /// [`Upstream::request`] with an explicit timeout (a per-tool timeout from the pipeline).
    /// When it fires the upstream is sent `notifications/cancelled` for the request.
    ///
    /// Each request is an OpenTelemetry CLIENT span; when it belongs to a sampled trace, its
    /// context travels in `params._meta` (and, over HTTP, as the `traceparent` header).
    pub async fn request_within(
        &self,
        origin: Option<Arc<Origin>>,
        method: &str,
        params: impl Into<Params>,
        timeout: Duration,
    ) -> Result<Payload, ErrorObject> {
        use tracing::Instrument;
        let mut params = params.into();
        // An open circuit answers at once: nothing is sent.
        let pass = self.circuit.admit(self.name())?;
        let _counted = InFlight::new(&self.in_flight);
        let span =
            crate::telemetry::spans::client_span(&self.config, method, params.value.as_ref());
        crate::telemetry::spans::inject_meta(&span, &mut params.value);
        // A listing changes nothing upstream: one that failed to reach it is sent again.
        let again = (self.config.retry_lists && is_listing(method)).then(|| params.clone());
        let mut outcome = self
            .send_within(origin.clone(), method, params, timeout)
            .instrument(span.clone())
            .await;
        if let (Some(params), Err(e)) = (again, &outcome)
            && is_connection_error(e)
        {
            tracing::debug!(upstream = %self.name(), method, error = %e.message, "Listing failed to reach the upstream; sending it again");
            // Boxed, as the other second tries below: inline, each would add its whole
            // future to that of every request.
            outcome = Box::pin(
                self.send_within(origin, method, params, timeout)
                    .instrument(span.clone()),
            )
            .await;
        }
        crate::telemetry::spans::record_outcome(&span, &outcome);
        pass.finish(self.name(), &outcome);
        outcome
    }

    async fn send_within(
        &self,
        origin: Option<Arc<Origin>>,
        method: &str,
        params: Params,
        timeout: Duration,
    ) -> Result<Payload, ErrorObject> {
        let live = read(&self.live).clone();
        // A handshake-era client of a server that speaks both eras is served in its own era:
        // on its own link where clients get one, else on the server's handshake-era session.
        let side = live.as_ref().and_then(|l| l.handshake.as_ref());
        if let (Some(side), Some(client)) = (side, handshake_client(origin.as_ref())) {
            if self.dedicated() {
                return self.request_on_link(client, method, params, timeout).await;
            }
            return side
                .peer
                .request_from(origin, method, params, timeout)
                .await;
        }
        // The level the shared sessions log at holds for both of a dual-era server's sessions
        // (the stateless one keeps it as the default `logLevel` of its requests).
        if let Some(side) = side.filter(|_| method == methods::LOGGING_SET_LEVEL)
            && let Err(e) = Box::pin(
                side.peer
                    .request_from(None, method, params.clone(), timeout),
            )
            .await
        {
            tracing::debug!(upstream = %self.name(), error = %e, "logging/setLevel failed on the handshake-era session");
        }
        // What a stateless upstream needs from `resources/unsubscribe` is a change of the listen
        // filter, which holds across reconnects: it needs no live connection.
        if method == methods::RESOURCES_UNSUBSCRIBE && self.era() == Era::Stateless {
            if let Some(uri) = params.get("uri").and_then(Value::as_str) {
                self.listen.remove(uri);
            }
            return Ok(serde_json::json!({}).into());
        }
        let Some(live) = live else {
            return Err(ErrorObject::upstream_unavailable(
                self.name(),
                self.unavailable_reason(),
            ));
        };
        if live.info.era() == Era::Stateless {
            return self
                .send_stateless(&live, origin, method, params, timeout)
                .await;
        }
        // A 2026-07-28 client has no session, so no link of its own: its requests share the
        // upstream's session.
        if let Some(origin) = origin
            .as_ref()
            .filter(|o| self.dedicated() && o.session.is_some())
        {
            return self
                .request_on_link(origin.clone(), method, params, timeout)
                .await;
        }
        if !self.is_http() {
            return live
                .peer
                .request_from(origin, method, params, timeout)
                .await;
        }
        match live
            .peer
            .request_from(origin.clone(), method, params.clone(), timeout)
            .await
        {
            Err(e) if is_retryable(&e) => match Box::pin(self.next_live(&live, timeout)).await {
                Some(fresh) => {
                    Box::pin(fresh.peer.request_from(origin, method, params, timeout)).await
                }
                None => Err(e),
            },
            other => other,
        }
    }

    /// A request on the client's own upstream session; if the upstream forgot that session
    /// (HTTP 404) the link is reopened and the request sent again, once.
    async fn request_on_link(
        &self,
        origin: Arc<Origin>,
        method: &str,
        params: Params,
        timeout: Duration,
    ) -> Result<Payload, ErrorObject> {
        let link = self.links.get(&self.config, &origin).await?;
        match link
            .peer
            .request_from(Some(origin.clone()), method, params.clone(), timeout)
            .await
        {
            Err(e) if is_retryable(&e) => {
                self.links
                    .forget(origin.session.as_deref().unwrap_or_default(), &link);
                let fresh = self.links.get(&self.config, &origin).await?;
                Box::pin(
                    fresh
                        .peer
                        .request_from(Some(origin), method, params, timeout),
                )
                .await
            }
            other => other,
        }
    }

    /// Whether each handshake-era client gets its own upstream session: always over HTTP,
    /// where sessions are cheap; for stdio only with `session: per_session` (a process per
    /// client). Only where the server speaks the handshake era: a 2026-07-28-only upstream
    /// has no sessions, every request says who it is for (and stateless clients never get a
    /// link, whatever the server).
    pub fn dedicated(&self) -> bool {
        (self.era() == Era::Handshake || self.dual())
            && (self.is_http()
                || matches!(self.config.session, crate::config::SessionMode::PerSession))
    }

    fn is_http(&self) -> bool {
        !matches!(
            self.config.transport,
            crate::config::TransportConfig::Stdio { .. }
        )
    }

    /// Sends a notification to the server if it is connected. A 2026-07-28 server takes
    /// none from clients but `notifications/cancelled`, which the peer sends itself.
    pub async fn notify(&self, method: &str, params: Option<Value>) {
        let live = read(&self.live).clone();
        if let Some(live) = live {
            if let Some(side) = &live.handshake {
                let _ = side.peer.notify(method, params).await;
                return;
            }
            if live.info.era() == Era::Stateless {
                tracing::debug!(upstream = %self.name(), method, "Not sent to a 2026-07-28 upstream");
                return;
            }
            let _ = live.peer.notify(method, params).await;
        }
    }

    /// Waits (bounded) for a connection other than `old` to become live.
    async fn next_live(&self, old: &Arc<Live>, limit: std::time::Duration) -> Option<Arc<Live>> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Some(live) = read(&self.live).clone()
                && !Arc::ptr_eq(&live, old)
            {
                return Some(live);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }

    /// Why requests to this upstream fail right now, in words.
    pub fn unavailable_reason(&self) -> String {
        if self.retired() {
            return "removed from the configuration".into();
        }
        let reason = match self.status() {
            Status::Starting => "still starting".into(),
            Status::Down { error, .. } => format!("down ({error}); reconnecting"),
            Status::Stopped => "stopped".into(),
            Status::Ready { .. } => "reconnecting".into(),
        };
        match self.circuit.reason() {
            Some(circuit) => format!("{circuit}; {reason}"),
            None => reason,
        }
    }

    fn set_status(&self, status: Status) {
        if let Status::Down { error, .. } = &status {
            self.circuit.note_failure(self.name(), error);
            self.failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *write(&self.status) = status;
    }

    /// How many times the connection was lost or failed to open since the gateway started:
    /// each one is followed by a restart attempt.
    pub fn failures(&self) -> u64 {
        self.failures.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_live(&self, live: Option<Arc<Live>>) {
        *write(&self.live) = live;
    }

    fn set_catalog(&self, catalog: UpstreamCatalog) {
        *write(&self.catalog) = Arc::new(catalog);
    }

    fn set_handshake_catalog(&self, catalog: Option<UpstreamCatalog>) {
        *write(&self.handshake_catalog) = catalog.map(Arc::new);
    }
}

/// The origin of a request from a handshake-era client (one with a session).
fn handshake_client(origin: Option<&Arc<Origin>>) -> Option<Arc<Origin>> {
    origin.filter(|o| o.session.is_some()).cloned()
}

/// Marks a gateway error as safe to retry on a new connection: the upstream never saw it.
pub fn mark_retryable(mut error: ErrorObject) -> ErrorObject {
    if let Some(data) = error.data.as_mut().and_then(Value::as_object_mut) {
        data.insert("retryable".into(), Value::Bool(true));
    }
    error
}

/// The listings: idempotent, so safe to send twice.
pub fn is_listing(method: &str) -> bool {
    matches!(
        method,
        methods::TOOLS_LIST
            | methods::PROMPTS_LIST
            | methods::RESOURCES_LIST
            | methods::RESOURCES_TEMPLATES_LIST
    )
}

/// The gateway could not reach the upstream (not a timeout: a listing that timed out may
/// still be running there, and waiting twice as long helps nobody).
pub fn is_connection_error(error: &ErrorObject) -> bool {
    error.code == crate::protocol::codes::UPSTREAM_UNAVAILABLE && circuit::counts(error)
}

fn is_retryable(error: &ErrorObject) -> bool {
    error.code == crate::protocol::codes::UPSTREAM_UNAVAILABLE
        && error
            .data
            .as_ref()
            .and_then(|d| d.get("retryable"))
            .and_then(Value::as_bool)
            == Some(true)
}

/// Reads a lock, recovering from poisoning: every value guarded here is replaced whole, so a
/// panicking writer cannot leave it half-updated.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

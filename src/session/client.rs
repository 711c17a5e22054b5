//! A client session (handshake era): what one client negotiated, and the stream the gateway uses to reach
//! it outside of a request (the Streamable HTTP GET stream).
//!
//! Session ids are 256 random bits, URL-safe base64: unguessable, and visible ASCII as the
//! transport requires. Idle sessions expire, so clients that vanish leave nothing behind.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::events::EventLog;
use super::principal::Principal;
use super::shared::{Record, Shared};
use crate::protocol::{Id, Message};

/// Request streams kept per session for resumption; older ones are forgotten.
pub const KEPT_STREAMS: usize = 32;

/// The GET stream's number in event ids; request streams count from 1.
pub const GET_STREAM: u64 = 0;

pub struct Session {
    pub id: String,
    pub protocol_version: String,
    pub client_info: Value,
    pub client_capabilities: Value,
    /// Who opened the session; every later message must come from the same subject.
    pub principal: Arc<Principal>,
    /// The IP address the session was opened from (HTTP faces), for per-source limits.
    pub source: Option<std::net::IpAddr>,
    initialized: AtomicBool,
    /// Whether the client sent a request after `initialize`: sessions that never did expire
    /// sooner, and are evicted first when the table is full.
    used: AtomicBool,
    last_seen: Mutex<Instant>,
    /// Messages not tied to a request (list_changed, updates, unrelated logs): the GET stream.
    /// Buffered even while no GET is connected, so a client that reconnects loses nothing.
    get_log: Arc<EventLog>,
    /// Whether a client is reading the GET stream (at most one at a time).
    get_reader: Arc<AtomicBool>,
    /// The last GET-stream event handed to a reader: a fresh GET starts after it.
    get_delivered: Arc<AtomicU64>,
    /// Streams of requests answered with SSE, for resumption.
    streams: Mutex<VecDeque<Arc<EventLog>>>,
    next_stream: AtomicU64,
    /// Minimum log level the client asked for (`logging/setLevel`), as a rank.
    log_level: Mutex<Option<usize>>,
    /// The client's requests in flight, by the client's id, so `notifications/cancelled`
    /// can stop them. A few at a time, so a list; empty (no allocation) while idle, where a
    /// map would keep ~2 KB per session (shards, and a table that never shrinks).
    inflight: Mutex<Vec<(Id, CancellationToken)>>,
    /// Bytes the session's streams hold, once the store registered it.
    budget: OnceLock<Arc<Budget>>,
    /// Set when replicas share sessions (`redis`): messages for a GET stream held by another
    /// replica go there.
    shared: OnceLock<Arc<Shared>>,
    /// Notifications that several replicas may each send for the same change (list changes,
    /// resource updates), by key, with when the last one went on the stream: repeats within
    /// [`COALESCE_FOR`] are dropped. Kept only when replicas share sessions.
    recent: Mutex<Vec<(String, Instant)>>,
    /// The resources the client subscribed to, for the shared record (kept only when
    /// replicas share sessions).
    subscriptions: Mutex<Vec<String>>,
    /// Whether the session may be shared with other replicas.
    shareable: bool,
}

/// Keeps a client request cancellable while it runs.
pub struct InFlight<'a> {
    session: &'a Session,
    id: Id,
    pub token: CancellationToken,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut inflight = lock(&self.session.inflight);
        if let Some(at) = inflight.iter().position(|(id, _)| *id == self.id) {
            inflight.swap_remove(at);
        }
        if inflight.is_empty() {
            *inflight = Vec::new();
        }
    }
}

/// Holds the GET stream's single reader slot; released when the reader goes away.
pub struct GetReader(Arc<AtomicBool>);

impl Drop for GetReader {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Session {
    pub fn new(protocol_version: &str, client_info: Value, client_capabilities: Value) -> Self {
        let bytes: [u8; 32] = rand::random();
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Self::with_id(id, protocol_version, client_info, client_capabilities)
    }

    /// A session under an id chosen by the transport, whose standalone stream already exists
    /// (HTTP+SSE opens the stream, and names the session, before `initialize`).
    pub fn with_stream(
        id: String,
        log: Arc<EventLog>,
        version: &str,
        client_info: Value,
        client_capabilities: Value,
    ) -> Self {
        Self {
            get_log: log,
            ..Self::with_id(id, version, client_info, client_capabilities)
        }
    }

    fn with_id(
        id: String,
        protocol_version: &str,
        client_info: Value,
        client_capabilities: Value,
    ) -> Self {
        Self {
            id,
            protocol_version: protocol_version.to_owned(),
            client_info,
            client_capabilities,
            principal: Principal::anonymous_shared(),
            source: None,
            initialized: AtomicBool::new(false),
            used: AtomicBool::new(false),
            last_seen: Mutex::new(Instant::now()),
            get_log: EventLog::new(GET_STREAM),
            get_reader: Arc::new(AtomicBool::new(false)),
            get_delivered: Arc::new(AtomicU64::new(0)),
            streams: Mutex::new(VecDeque::new()),
            next_stream: AtomicU64::new(GET_STREAM + 1),
            log_level: Mutex::new(None),
            inflight: Mutex::new(Vec::new()),
            budget: OnceLock::new(),
            shared: OnceLock::new(),
            recent: Mutex::new(Vec::new()),
            subscriptions: Mutex::new(Vec::new()),
            shareable: false,
        }
    }

    /// The same session, to be shared with the other replicas when they share sessions
    /// (Streamable HTTP; not HTTP+SSE or stdio, whose stream is their connection), numbering
    /// its streams from `base` (the replica's range, so an event id names the replica that
    /// wrote it; 0 when sessions are not shared).
    pub fn shareable(mut self, base: u64) -> Self {
        self.shareable = true;
        if base != 0 {
            self.get_log = EventLog::new(base);
            self.next_stream = AtomicU64::new(base + 1);
        }
        self
    }

    /// Whether the session may be shared with other replicas (see [`Session::shareable`]).
    pub fn is_shareable(&self) -> bool {
        self.shareable
    }

    /// A copy of a session another replica opened, from its shared record; its log level and
    /// subscriptions are left for the caller to replay (they need upstream requests).
    pub fn restore(id: String, record: &Record, shared: &Arc<Shared>) -> Self {
        let mut session = Self::with_id(
            id,
            &record.protocol_version,
            record.client_info.clone(),
            record.client_capabilities.clone(),
        )
        .shareable(shared.stream_base());
        session.principal = Arc::new(record.principal());
        session.source = record.source;
        if record.initialized {
            session.mark_initialized();
        }
        session
    }

    /// What the shared record holds of this session.
    pub fn record(&self) -> Record {
        Record {
            protocol_version: self.protocol_version.clone(),
            client_info: self.client_info.clone(),
            client_capabilities: self.client_capabilities.clone(),
            subject: self.principal.subject.clone(),
            method: self.principal.method.as_str().to_owned(),
            scopes: self.principal.scopes.iter().cloned().collect(),
            claims: self.principal.claims.clone(),
            source: self.source,
            log_level: self.log_level(),
            subscriptions: self.subscriptions(),
            initialized: self.is_initialized(),
        }
    }

    /// Makes the session forward GET-stream messages through `shared` when another replica
    /// holds its stream.
    pub fn share(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(shared.clone());
    }

    /// The shared store, when replicas share sessions.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.get()
    }

    /// Whether a client reads the GET stream on this replica.
    pub fn has_reader(&self) -> bool {
        self.get_reader.load(Ordering::Acquire)
    }

    /// The resources the client subscribed to (kept when replicas share sessions).
    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).clone()
    }

    /// Records a subscription (`true`) or its end, for the shared record.
    pub fn note_subscription(&self, uri: &str, subscribed: bool) {
        if self.shared.get().is_none() {
            return;
        }
        let mut subs = lock(&self.subscriptions);
        subs.retain(|u| u != uri);
        if subscribed {
            subs.push(uri.to_owned());
        }
    }

    /// Whether `principal` may use this session: the same subject, proved the same way, as
    /// the one that opened it.
    pub fn belongs_to(&self, principal: &Principal) -> bool {
        self.principal.subject == principal.subject && self.principal.method == principal.method
    }

    pub fn set_log_level(&self, rank: usize) {
        *lock(&self.log_level) = Some(rank);
    }

    pub fn log_level(&self) -> Option<usize> {
        *lock(&self.log_level)
    }

    /// Registers a client request as in flight until the returned guard drops.
    pub fn track(&self, id: Id) -> InFlight<'_> {
        self.used.store(true, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut inflight = lock(&self.inflight);
        // A client reusing the id of a request still running replaces it, as a map would.
        inflight.retain(|(running, _)| *running != id);
        inflight.push((id.clone(), token.clone()));
        drop(inflight);
        InFlight {
            session: self,
            id,
            token,
        }
    }

    /// `notifications/cancelled` from the client: stop the request if it is still running.
    pub fn cancel(&self, id: &Id) -> bool {
        let inflight = lock(&self.inflight);
        let token = inflight.iter().find(|(running, _)| running == id);
        token.map(|(_, t)| t.cancel()).is_some()
    }

    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Relaxed);
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Relaxed)
    }

    pub(super) fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Idle for longer than `ttl`, with nobody reading its stream.
    pub(super) fn expired(&self, ttl: Duration) -> bool {
        !self.get_reader.load(Ordering::Acquire) && lock(&self.last_seen).elapsed() > ttl
    }

    /// Whether the client made a request in this session since `initialize`.
    pub fn is_used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// Nobody reads its stream and no request of it is running: closing it interrupts
    /// nothing in progress.
    pub(super) fn is_idle(&self) -> bool {
        !self.get_reader.load(Ordering::Acquire) && lock(&self.inflight).is_empty()
    }

    pub(super) fn last_seen(&self) -> Instant {
        *lock(&self.last_seen)
    }

    /// Claims the GET stream; `None` if a reader already has it (one per session, so every
    /// message goes to exactly one stream).
    pub fn open_stream(&self) -> Option<GetReader> {
        let free = self
            .get_reader
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        free.then(|| GetReader(self.get_reader.clone()))
    }

    /// The GET stream's log, where a fresh reader starts (after what was already delivered),
    /// and the counter to record deliveries in.
    pub fn get_stream(&self) -> (Arc<EventLog>, u64, Arc<AtomicU64>) {
        (
            self.get_log.clone(),
            self.get_delivered.load(Ordering::Acquire),
            self.get_delivered.clone(),
        )
    }

    /// Queues a message on the GET stream; false if the session is closed. When replicas
    /// share sessions and this one does not hold the stream, the message goes to the replica
    /// that does (or stays here when none does).
    pub fn send(&self, msg: Message) -> bool {
        if let Some(shared) = self.shared.get()
            && !self.has_reader()
        {
            return !self.get_log.is_closed()
                && shared.forward(&self.id, self.get_log.clone(), msg);
        }
        self.push_local(msg)
    }

    /// Queues on the GET stream of this replica, never forwarded (also what another replica
    /// sent here for the stream this one holds). When replicas share sessions, a list change
    /// or resource update the stream carried less than [`COALESCE_FOR`] ago is not repeated:
    /// every replica whose upstream saw the change sends one.
    pub fn push_local(&self, msg: Message) -> bool {
        if self.shared.get().is_some()
            && let Some(key) = coalescing_key(&msg)
        {
            let mut recent = lock(&self.recent);
            recent.retain(|(_, at)| at.elapsed() < COALESCE_FOR);
            if recent.iter().any(|(k, _)| *k == key) {
                return !self.get_log.is_closed();
            }
            recent.push((key, Instant::now()));
        }
        self.get_log.push(msg) != 0
    }

    /// The GET stream's number (0 unless replicas share sessions).
    pub fn get_stream_number(&self) -> u64 {
        self.get_log.stream
    }

    /// Charges what the session's streams hold to `budget` from now on.
    pub fn attach(&self, budget: Arc<Budget>) {
        self.get_log.attach(&budget);
        let _ = self.budget.set(budget);
    }

    /// The session's byte budget (`None` until the store registered the session).
    pub fn budget(&self) -> Option<&Arc<Budget>> {
        self.budget.get()
    }

    /// A new stream for the SSE answer to request `id`, kept for resumption.
    pub fn new_request_stream(&self, id: &Id) -> Arc<EventLog> {
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let log = EventLog::for_request(stream, id.clone());
        if let Some(budget) = self.budget.get() {
            log.attach(budget);
        }
        let mut streams = lock(&self.streams);
        if streams.len() >= KEPT_STREAMS {
            streams.pop_front();
        }
        streams.push_back(log.clone());
        log
    }

    /// A stream by its number, for `Last-Event-ID` resumption.
    pub fn stream(&self, stream: u64) -> Option<Arc<EventLog>> {
        if stream == self.get_log.stream {
            return Some(self.get_log.clone());
        }
        lock(&self.streams)
            .iter()
            .find(|l| l.stream == stream)
            .cloned()
    }

    /// Ends the session's streams and stops its requests in flight.
    pub fn close_stream(&self) {
        self.get_log.close();
        for (_, token) in lock(&self.inflight).iter() {
            token.cancel();
        }
    }
}

/// How long a repeated list change or resource update is merged into the first (replicas
/// sharing sessions).
pub const COALESCE_FOR: Duration = Duration::from_secs(1);

/// What makes two notifications the same change: the method, and the URI of an update.
fn coalescing_key(msg: &Message) -> Option<String> {
    let Message::Notification(n) = msg else {
        return None;
    };
    if n.method.ends_with("/list_changed") {
        return Some(n.method.clone());
    }
    if n.method == crate::protocol::methods::RESOURCES_UPDATED {
        let uri = n.params.as_ref()?.get("uri")?.as_str()?;
        return Some(format!("{} {uri}", n.method));
    }
    None
}

/// A mutex whose data stays valid even if a holder panicked (every update is a whole write).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_long_random_and_visible_ascii() {
        let a = Session::new("2025-11-25", json!({}), json!({}));
        let b = Session::new("2025-11-25", json!({}), json!({}));
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 43);
        assert!(a.id.bytes().all(|c| (0x21..=0x7e).contains(&c)));
    }

    #[test]
    fn requests_in_flight_are_cancellable_until_they_end() {
        let s = Session::new("2025-11-25", json!({}), json!({}));
        assert!(s.is_idle());
        let a = s.track(Id::Num(1));
        let b = s.track(Id::Str("x".into()));
        assert!(!s.is_idle());
        assert!(s.cancel(&Id::Num(1)));
        assert!(a.token.is_cancelled() && !b.token.is_cancelled());
        drop(a);
        assert!(!s.cancel(&Id::Num(1)), "ended: nothing to cancel");
        s.close_stream();
        assert!(b.token.is_cancelled(), "closing the session stops the rest");
        drop(b);
        assert!(s.is_idle());
        assert_eq!(lock(&s.inflight).capacity(), 0, "nothing kept while idle");
    }

    #[test]
    fn one_stream_per_session_and_reopen_after_close() {
        let s = Session::new("2025-11-25", json!({}), json!({}));
        let rx = s.open_stream().expect("first stream");
        assert!(s.open_stream().is_none());
        drop(rx);
        assert!(s.open_stream().is_some());
    }
}

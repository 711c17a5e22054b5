//! Downstream sessions: what one client negotiated, and the stream the gateway uses to reach
//! it outside of a request (the Streamable HTTP GET stream).
//!
//! Session ids are 256 random bits, URL-safe base64: unguessable, and visible ASCII as the
//! transport requires. Idle sessions expire, so clients that vanish leave nothing behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::mpsc;

use tokio_util::sync::CancellationToken;

use crate::protocol::{Id, Message};

/// Most concurrent sessions; past it new clients get 503 instead of exhausting memory.
pub const MAX_SESSIONS: usize = 10_000;

/// Messages queued for a client's GET stream before further ones are dropped: a client that
/// does not read its stream must not make the gateway buffer without bound.
pub const STREAM_QUEUE: usize = 64;

pub struct Session {
    pub id: String,
    pub protocol_version: String,
    pub client_info: Value,
    pub client_capabilities: Value,
    initialized: AtomicBool,
    last_seen: Mutex<Instant>,
    stream: Mutex<Option<mpsc::Sender<Message>>>,
    /// Minimum log level the client asked for (`logging/setLevel`), as a rank.
    log_level: Mutex<Option<usize>>,
    /// The client's requests in flight, by the client's id, so `notifications/cancelled`
    /// can stop them.
    inflight: DashMap<Id, CancellationToken>,
}

/// Keeps a client request cancellable while it runs.
pub struct InFlight<'a> {
    session: &'a Session,
    id: Id,
    pub token: CancellationToken,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.session.inflight.remove(&self.id);
    }
}

impl Session {
    pub fn new(protocol_version: &str, client_info: Value, client_capabilities: Value) -> Self {
        let bytes: [u8; 32] = rand::random();
        Self {
            id: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            protocol_version: protocol_version.to_owned(),
            client_info,
            client_capabilities,
            initialized: AtomicBool::new(false),
            last_seen: Mutex::new(Instant::now()),
            stream: Mutex::new(None),
            log_level: Mutex::new(None),
            inflight: DashMap::new(),
        }
    }

    pub fn set_log_level(&self, rank: usize) {
        *lock(&self.log_level) = Some(rank);
    }

    pub fn log_level(&self) -> Option<usize> {
        *lock(&self.log_level)
    }

    /// Registers a client request as in flight until the returned guard drops.
    pub fn track(&self, id: Id) -> InFlight<'_> {
        let token = CancellationToken::new();
        self.inflight.insert(id.clone(), token.clone());
        InFlight {
            session: self,
            id,
            token,
        }
    }

    /// `notifications/cancelled` from the client: stop the request if it is still running.
    pub fn cancel(&self, id: &Id) -> bool {
        self.inflight.get(id).map(|t| t.cancel()).is_some()
    }

    pub fn mark_initialized(&self) {
        self.initialized.store(true, Ordering::Relaxed);
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Idle for longer than `ttl`, with no open stream.
    fn expired(&self, ttl: Duration) -> bool {
        let streaming = lock(&self.stream).as_ref().is_some_and(|s| !s.is_closed());
        !streaming && lock(&self.last_seen).elapsed() > ttl
    }

    /// Opens the server→client stream; `None` if one is already open (one per session, so
    /// every message goes to exactly one stream).
    pub fn open_stream(&self) -> Option<mpsc::Receiver<Message>> {
        let mut slot = lock(&self.stream);
        if slot.as_ref().is_some_and(|s| !s.is_closed()) {
            return None;
        }
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        *slot = Some(tx);
        Some(rx)
    }

    /// Sends on the stream if one is open; false if the message could not be queued.
    pub fn send(&self, msg: Message) -> bool {
        let slot = lock(&self.stream);
        match slot.as_ref() {
            Some(tx) => tx.try_send(msg).is_ok(),
            None => false,
        }
    }

    /// Ends the stream (the client sees its SSE response end).
    pub fn close_stream(&self) {
        lock(&self.stream).take();
    }
}

/// A mutex whose data stays valid even if a holder panicked (every update is a whole write).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct SessionStore {
    sessions: DashMap<String, Arc<Session>>,
    idle_ttl: Duration,
}

impl SessionStore {
    pub fn new(idle_ttl: Duration) -> Self {
        Self {
            sessions: DashMap::new(),
            idle_ttl,
        }
    }

    /// Registers a session; `None` when the store is full.
    pub fn insert(&self, session: Arc<Session>) -> Option<Arc<Session>> {
        if self.sessions.len() >= MAX_SESSIONS {
            return None;
        }
        self.sessions.insert(session.id.clone(), session.clone());
        Some(session)
    }

    /// Looks a session up without counting it as client activity.
    pub fn peek(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.get(id).map(|s| s.clone())
    }

    /// The most verbose log level any session asked for.
    pub fn min_log_level(&self) -> Option<usize> {
        self.sessions.iter().filter_map(|s| s.log_level()).min()
    }

    /// Sends a message to the stream of every initialized session that `wants` it.
    pub fn broadcast_where(&self, msg: &Message, wants: impl Fn(&Session) -> bool) -> usize {
        self.sessions
            .iter()
            .filter(|s| s.is_initialized() && wants(s) && s.send(msg.clone()))
            .count()
    }

    /// Looks a session up and counts the lookup as activity.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.sessions.get(id)?.clone();
        session.touch();
        Some(session)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let (_, session) = self.sessions.remove(id)?;
        session.close_stream();
        Some(session)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sends a message to every initialized session's stream.
    pub fn broadcast(&self, msg: &Message) -> usize {
        self.broadcast_where(msg, |_| true)
    }

    /// Drops sessions idle past the TTL; returns their ids.
    pub fn reap(&self) -> Vec<String> {
        let mut gone = Vec::new();
        self.sessions.retain(|id, s| {
            let keep = !s.expired(self.idle_ttl);
            if !keep {
                s.close_stream();
                gone.push(id.clone());
            }
            keep
        });
        gone
    }
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
    fn one_stream_per_session_and_reopen_after_close() {
        let s = Session::new("2025-11-25", json!({}), json!({}));
        let rx = s.open_stream().expect("first stream");
        assert!(s.open_stream().is_none());
        drop(rx);
        assert!(s.open_stream().is_some());
    }

    #[test]
    fn idle_sessions_are_reaped_but_streaming_ones_kept() {
        let store = SessionStore::new(Duration::ZERO);
        let idle = store
            .insert(Arc::new(Session::new("2025-11-25", json!({}), json!({}))))
            .expect("room");
        let live = store
            .insert(Arc::new(Session::new("2025-11-25", json!({}), json!({}))))
            .expect("room");
        let _rx = live.open_stream();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.reap(), vec![idle.id.clone()]);
        assert!(store.get(&idle.id).is_none());
        assert!(store.get(&live.id).is_some());
    }
}

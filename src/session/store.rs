//! Every live session of this replica, by id: lookup, broadcast, admission under the
//! session limits, and expiry of idle and unused ones.
//!
//! Admission: a new session must fit under `sessions.max`, and under its scope's cap
//! (`per_principal` for an authenticated caller, `per_source` for an anonymous one). When it
//! does not, the least recently used idle session of that scope (idle: nobody reads its
//! stream and none of its requests is running) is closed to make room, sessions that never
//! made a request first; only when every session there is busy is the new one refused.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;

use super::budget::Buffers;
use super::client::Session;
use super::shared::Shared;
use crate::config::limits::SessionsConfig;
use crate::protocol::Message;

pub struct SessionStore {
    sessions: DashMap<String, Arc<Session>>,
    idle_ttl: Duration,
    limits: SessionsConfig,
    buffers: Arc<Buffers>,
    /// Serialises admissions, so concurrent `initialize`s cannot overshoot a cap.
    admitting: Mutex<()>,
    /// Set when replicas share sessions through Redis (`redis`).
    shared: std::sync::OnceLock<Arc<Shared>>,
}

/// Which limit a session was evicted or refused under: `sessions`, `principal` or `source`.
pub type Limit = &'static str;

/// A session admitted, and the idle sessions closed to make room for it.
pub struct Admitted {
    pub session: Arc<Session>,
    pub evicted: Vec<(Arc<Session>, Limit)>,
}

/// Whom a per-scope cap counts: an authenticated principal, or an anonymous client's address.
enum Scope<'a> {
    Principal(&'a super::Principal),
    Source(IpAddr),
}

fn scope_of(session: &Session) -> Option<Scope<'_>> {
    use crate::config::auth::AuthMethod;
    match session.principal.method {
        AuthMethod::Anonymous => session.source.map(Scope::Source),
        AuthMethod::Local => None,
        _ => Some(Scope::Principal(&session.principal)),
    }
}

fn same_scope(a: &Scope<'_>, b: &Session) -> bool {
    match (a, scope_of(b)) {
        (Scope::Principal(p), Some(Scope::Principal(q))) => {
            p.subject == q.subject && p.method == q.method
        }
        (Scope::Source(x), Some(Scope::Source(y))) => *x == y,
        _ => false,
    }
}

impl SessionStore {
    /// A store with the default limits and byte budgets (tests, and faces that keep their
    /// own sessions).
    pub fn new(idle_ttl: Duration) -> Self {
        let buffers = crate::config::buffers::BuffersConfig::default();
        Self::with_limits(
            idle_ttl,
            SessionsConfig::default(),
            Buffers::new(buffers.session_bytes, buffers.total_bytes),
        )
    }

    pub fn with_limits(idle_ttl: Duration, limits: SessionsConfig, buffers: Arc<Buffers>) -> Self {
        Self {
            sessions: DashMap::new(),
            idle_ttl,
            limits,
            buffers,
            admitting: Mutex::new(()),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Shares this store's sessions with the other replicas of `shared` (set once, at start).
    pub fn share(&self, shared: Arc<Shared>) {
        let _ = self.shared.set(shared);
    }

    /// The shared side, when replicas share sessions.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.get()
    }

    /// Ids of the sessions whose GET stream is read on this replica.
    pub fn with_readers(&self) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|s| s.has_reader())
            .map(|s| s.id.clone())
            .collect()
    }

    /// Bytes held for clients, over every session.
    pub fn buffers(&self) -> &Arc<Buffers> {
        &self.buffers
    }

    /// Registers a session, closing idle ones to make room where a limit is reached (see the
    /// module documentation); `Err` names the limit when nothing could be closed. The
    /// evicted sessions are out of the store already; their streams are closed.
    pub fn insert(&self, session: Arc<Session>) -> Result<Admitted, Limit> {
        let _admitting = self.admitting.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = Vec::new();
        if let Some((scope, cap, limit)) = self.scope_cap(&session) {
            let (count, victim) = self.census(|s| same_scope(&scope, s));
            if count >= cap {
                evicted.push((self.evict(victim).ok_or(limit)?, limit));
            }
        }
        if self.sessions.len() >= self.limits.max {
            let (_, victim) = self.census(|_| true);
            evicted.push((self.evict(victim).ok_or("sessions")?, "sessions"));
        }
        session.attach(self.buffers.session());
        if let Some(shared) = self.shared.get()
            && session.is_shareable()
        {
            session.share(shared);
        }
        self.sessions.insert(session.id.clone(), session.clone());
        Ok(Admitted { session, evicted })
    }

    /// `sessions.max`.
    pub fn max(&self) -> usize {
        self.limits.max
    }

    fn scope_cap<'a>(&self, session: &'a Session) -> Option<(Scope<'a>, usize, Limit)> {
        let (cap, limit) = match scope_of(session)? {
            Scope::Principal(_) => (self.limits.per_principal, "principal"),
            Scope::Source(_) => (self.limits.per_source, "source"),
        };
        (cap > 0).then(|| (scope_of(session).expect("scoped above"), cap, limit))
    }

    /// How many sessions `counts`, and the one of them to evict first: idle, never used
    /// before used, least recently seen first.
    fn census(&self, counts: impl Fn(&Session) -> bool) -> (usize, Option<String>) {
        let mut count = 0;
        let mut best: Option<(bool, std::time::Instant, String)> = None;
        for entry in self.sessions.iter() {
            let s = entry.value();
            if !counts(s) {
                continue;
            }
            count += 1;
            if !s.is_idle() {
                continue;
            }
            let key = (s.is_used(), s.last_seen());
            if best.as_ref().is_none_or(|(u, t, _)| key < (*u, *t)) {
                best = Some((key.0, key.1, s.id.clone()));
            }
        }
        (count, best.map(|(_, _, id)| id))
    }

    fn evict(&self, id: Option<String>) -> Option<Arc<Session>> {
        self.remove(&id?)
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
        if let Some(shared) = self.shared.get() {
            shared.forget(id);
        }
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

    /// Drops sessions idle past the TTL, and those that never made a request past
    /// `sessions.unused_timeout`; returns their ids.
    pub fn reap(&self) -> Vec<String> {
        let mut gone = Vec::new();
        let unused_ttl = self.limits.unused_timeout;
        self.sessions.retain(|id, s| {
            let keep = !s.expired(self.idle_ttl) && (s.is_used() || !s.expired(unused_ttl));
            if !keep {
                s.close_stream();
                if let Some(shared) = self.shared.get() {
                    shared.forget(id);
                }
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

    fn session() -> Arc<Session> {
        Arc::new(Session::new("2025-11-25", json!({}), json!({})))
    }

    fn from(ip: [u8; 4]) -> Arc<Session> {
        let mut s = Session::new("2025-11-25", json!({}), json!({}));
        s.source = Some(IpAddr::from(ip));
        Arc::new(s)
    }

    fn limits(max: usize, per_source: usize) -> SessionsConfig {
        SessionsConfig {
            max,
            per_source,
            unused_timeout: Duration::from_secs(3600),
            ..SessionsConfig::default()
        }
    }

    #[test]
    fn a_full_source_evicts_its_least_recently_used_idle_session_unused_first() {
        let store = SessionStore::with_limits(
            Duration::from_secs(3600),
            limits(100, 3),
            Buffers::new(1 << 20, 1 << 20),
        );
        let used = store.insert(from([10, 0, 0, 1])).expect("room").session;
        drop(used.track(crate::protocol::Id::Num(1)));
        let first = store.insert(from([10, 0, 0, 1])).expect("room").session;
        let second = store.insert(from([10, 0, 0, 1])).expect("room").session;
        let other = store.insert(from([10, 0, 0, 2])).expect("room").session;
        let admitted = store.insert(from([10, 0, 0, 1])).expect("evicts");
        let gone: Vec<_> = admitted
            .evicted
            .iter()
            .map(|(s, l)| (s.id.clone(), *l))
            .collect();
        assert_eq!(gone, [(first.id.clone(), "source")]);
        assert!(store.peek(&first.id).is_none());
        for kept in [&used, &second, &other, &admitted.session] {
            assert!(store.peek(&kept.id).is_some());
        }
    }

    #[test]
    fn busy_sessions_are_never_evicted_and_a_full_table_refuses() {
        let store = SessionStore::with_limits(
            Duration::from_secs(3600),
            limits(2, 0),
            Buffers::new(1 << 20, 1 << 20),
        );
        let a = store.insert(session()).expect("room").session;
        let b = store.insert(session()).expect("room").session;
        let _reading = a.open_stream();
        let _running = b.track(crate::protocol::Id::Num(1));
        assert_eq!(store.insert(session()).err(), Some("sessions"));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn unused_sessions_expire_after_the_short_timeout() {
        let limits = SessionsConfig {
            unused_timeout: Duration::ZERO,
            ..SessionsConfig::default()
        };
        let store = SessionStore::with_limits(
            Duration::from_secs(3600),
            limits,
            Buffers::new(1 << 20, 1 << 20),
        );
        let unused = store.insert(session()).expect("room").session;
        let used = store.insert(session()).expect("room").session;
        drop(used.track(crate::protocol::Id::Num(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.reap(), vec![unused.id.clone()]);
        assert!(store.peek(&used.id).is_some());
    }

    #[test]
    fn idle_sessions_are_reaped_but_streaming_ones_kept() {
        let store = SessionStore::new(Duration::ZERO);
        let idle = store.insert(session()).expect("room").session;
        let live = store.insert(session()).expect("room").session;
        let _rx = live.open_stream();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.reap(), vec![idle.id.clone()]);
        assert!(store.get(&idle.id).is_none());
        assert!(store.get(&live.id).is_some());
    }
}

//! Every live session of this replica, by id: lookup, broadcast, and expiry of idle ones.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;

use super::budget::Buffers;
use super::client::{MAX_SESSIONS, Session};
use crate::protocol::Message;

pub struct SessionStore {
    sessions: DashMap<String, Arc<Session>>,
    idle_ttl: Duration,
    buffers: Arc<Buffers>,
}

impl SessionStore {
    pub fn new(idle_ttl: Duration, buffers: Arc<Buffers>) -> Self {
        Self {
            sessions: DashMap::new(),
            idle_ttl,
            buffers,
        }
    }

    /// Bytes held for clients, over every session.
    pub fn buffers(&self) -> &Arc<Buffers> {
        &self.buffers
    }

    /// Registers a session; `None` when the store is full.
    pub fn insert(&self, session: Arc<Session>) -> Option<Arc<Session>> {
        if self.sessions.len() >= MAX_SESSIONS {
            return None;
        }
        session.attach(self.buffers.session());
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
    fn idle_sessions_are_reaped_but_streaming_ones_kept() {
        let store = SessionStore::new(Duration::ZERO, Buffers::new(1 << 20, 1 << 20));
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

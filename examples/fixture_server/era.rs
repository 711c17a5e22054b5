//! The fixture's protocol eras, who hears of its changes, and the diagnostics the gateway's
//! era tests read back: a journal of protocol events and the `_meta` and HTTP headers a
//! request arrived with.
//!
//! rmcp serves both eras from one handler: a request whose `_meta` names 2026-07-28 is served
//! statelessly, an `initialize` opens a handshake-era session. `--protocol` narrows the
//! versions the fixture admits to, which is all a server of one era would do differently.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

use clap::ValueEnum;
use rmcp::RoleServer;
use rmcp::model::{ProtocolVersion, ResourceUpdatedNotificationParam};
use rmcp::service::{Peer, RequestContext, SubscriptionSink};
use serde_json::{Map, Value, json};

/// Which protocol eras the fixture speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// 2026-07-28 only: `initialize` is refused with -32022.
    Stateless,
    /// 2024-11-05 … 2025-11-25 only: `server/discover` is refused with -32022 naming
    /// only those.
    Handshake,
    /// Both, chosen per connection (stdio) or per request (HTTP) by how the client opens.
    Dual,
}

impl Protocol {
    pub fn versions(self) -> Cow<'static, [ProtocolVersion]> {
        match self {
            Protocol::Stateless => Cow::Owned(vec![ProtocolVersion::V_2026_07_28]),
            Protocol::Handshake => {
                Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
            }
            Protocol::Dual => {
                Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2026_07_28))
            }
        }
    }
}

/// What happened, in order, as short lines (`discover`, `listen {...}`, `cancelled slow`).
/// The `journal` tool returns it; it lives as long as the process.
#[derive(Default)]
pub struct Journal(Mutex<Vec<String>>);

impl Journal {
    pub fn record(&self, server: &str, event: impl Into<String>) {
        let event = event.into();
        eprintln!("fixture {server}: {event}");
        self.lock().push(event);
    }

    pub fn events(&self) -> Vec<String> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everyone to tell of a change: handshake-era sessions (list changes, and the resource URIs
/// each subscribed to) and 2026-07-28 `subscriptions/listen` streams.
#[derive(Default)]
pub struct Watchers {
    sessions: Mutex<Vec<Peer<RoleServer>>>,
    subscribed: Mutex<Vec<(Peer<RoleServer>, String)>>,
    listens: Mutex<Vec<(u64, SubscriptionSink)>>,
    next_listen: std::sync::atomic::AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watchers {
    pub fn add_session(&self, peer: Peer<RoleServer>) {
        lock(&self.sessions).push(peer);
    }

    pub fn subscribe(&self, peer: Peer<RoleServer>, uri: String) {
        lock(&self.subscribed).push((peer, uri));
    }

    pub fn unsubscribe(&self, uri: &str) {
        lock(&self.subscribed).retain(|(_, u)| u != uri);
    }

    /// Registers a listen stream; the number unregisters it.
    pub fn add_listen(&self, sink: SubscriptionSink) -> u64 {
        let key = self
            .next_listen
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.listens).push((key, sink));
        key
    }

    pub fn remove_listen(&self, key: u64) {
        lock(&self.listens).retain(|(k, _)| *k != key);
    }

    fn sessions(&self) -> Vec<Peer<RoleServer>> {
        let mut sessions = lock(&self.sessions);
        sessions.retain(|peer| !peer.is_transport_closed());
        sessions.clone()
    }

    fn listens(&self) -> Vec<SubscriptionSink> {
        lock(&self.listens).iter().map(|(_, s)| s.clone()).collect()
    }

    /// Sends `notifications/tools/list_changed` to every session and listen stream.
    pub async fn tools_changed(&self, server: &str) {
        for peer in self.sessions() {
            if let Err(err) = peer.notify_tool_list_changed().await {
                eprintln!("fixture {server}: list_changed not delivered: {err}");
            }
        }
        for sink in self.listens() {
            // A stream whose filter left list changes out refuses them; that is fine.
            let _ = sink.notify_tool_list_changed().await;
        }
    }

    /// Sends `notifications/resources/updated` for `uri` to whoever subscribed to it;
    /// returns how many were told.
    pub async fn resource_updated(&self, uri: &str) -> usize {
        let mut told = 0;
        let subscribed: Vec<Peer<RoleServer>> = lock(&self.subscribed)
            .iter()
            .filter(|(peer, u)| u == uri && !peer.is_transport_closed())
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in subscribed {
            let param = ResourceUpdatedNotificationParam::new(uri);
            told += usize::from(peer.notify_resource_updated(param).await.is_ok());
        }
        for sink in self.listens() {
            told += usize::from(sink.notify_resource_updated(uri).await.is_ok());
        }
        told
    }
}

/// What a request arrived with: its `_meta` and, over HTTP, its headers (names lowercase).
pub fn envelope_of(context: &RequestContext<RoleServer>) -> Value {
    let meta = serde_json::to_value(&context.meta).unwrap_or(Value::Null);
    let headers = context
        .extensions
        .get::<http::request::Parts>()
        .map(|parts| {
            let mut map = Map::new();
            for (name, value) in &parts.headers {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                map.insert(name.as_str().to_owned(), Value::String(value));
            }
            Value::Object(map)
        })
        .unwrap_or(Value::Null);
    json!({ "meta": meta, "headers": headers })
}

/// Shared between every clone of the handler.
#[derive(Default)]
pub struct Diagnostics {
    pub journal: Journal,
    pub watchers: Watchers,
}

pub type Shared = Arc<Diagnostics>;

//! `subscriptions/listen` towards a 2026-07-28 upstream: the one way such a server sends
//! notifications that belong to no request (list changes, resource updates).
//!
//! One listen is kept open per stateless upstream while it is connected. Its filter asks for the
//! list changes the server's capabilities offer and for updates of the resource URIs the
//! gateway currently needs ([`ListenSet`], fed by the clients' `resources/subscribe`, counted
//! by the relay). When that set changes the listen is issued again with the new filter and
//! the old one ended (closing its stream over HTTP, `notifications/cancelled` on stdio); when
//! the upstream ends it (a final result, `notifications/cancelled`, or a broken stream) it
//! is reopened after a capped backoff. What arrives on it is relayed like the same
//! notifications from a handshake-era server (see `peer.rs` for how it is told apart).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::ServerInfo;
use super::peer::Peer;

/// First wait before reopening a listen the upstream ended; doubles per failure.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest wait before reopening a listen.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A listen that lasted this long resets the backoff: it was healthy, not flapping.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// How long one listen request may stay open before it is renewed; a renewal costs one
/// request a day and bounds the life of a stream a broken middlebox might keep half-open.
const LISTEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The resource URIs the gateway needs updates for from one upstream, and a signal when
/// they change. Kept across reconnects: the next listen asks for the same set.
pub struct ListenSet {
    uris: Mutex<BTreeSet<String>>,
    changed: watch::Sender<u64>,
}

impl Default for ListenSet {
    fn default() -> Self {
        Self {
            uris: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl ListenSet {
    /// Adds a URI; the listen is reissued if it was not there yet.
    pub fn add(&self, uri: String) {
        if self.lock().insert(uri) {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// Removes a URI; the listen is reissued if it was there.
    pub fn remove(&self, uri: &str) {
        if self.lock().remove(uri) {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    pub fn uris(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.uris.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `notifications` filter for a listen: each list change the server's capabilities say it
/// can deliver, and the URIs when it supports resource subscriptions. `None` when there is
/// nothing to ask for.
pub fn filter(info: &ServerInfo, uris: &[String]) -> Option<Value> {
    let caps = &info.capabilities;
    let flag = |pointer: &str| caps.pointer(pointer) == Some(&Value::Bool(true));
    let mut filter = Map::new();
    for (pointer, key) in [
        ("/tools/listChanged", "toolsListChanged"),
        ("/prompts/listChanged", "promptsListChanged"),
        ("/resources/listChanged", "resourcesListChanged"),
    ] {
        if flag(pointer) {
            filter.insert(key.into(), Value::Bool(true));
        }
    }
    if flag("/resources/subscribe") && !uris.is_empty() {
        filter.insert("resourceSubscriptions".into(), json!(uris));
    }
    (!filter.is_empty()).then_some(Value::Object(filter))
}

/// Keeps a listen open on `peer` until `stop` fires or the connection closes.
pub async fn run(
    upstream: Arc<super::Upstream>,
    peer: Arc<Peer>,
    info: ServerInfo,
    stop: CancellationToken,
) {
    let name = upstream.name().to_owned();
    let mut changes = upstream.listen.watch();
    let mut backoff = BACKOFF_START;
    loop {
        changes.borrow_and_update();
        let uris = upstream.listen.uris();
        let Some(notifications) = filter(&info, &uris) else {
            // Nothing to listen for until a client subscribes to something.
            tokio::select! {
                _ = changes.changed() => continue,
                _ = stop.cancelled() => return,
                _ = peer.closed() => return,
            }
        };
        let (ack_tx, mut ack_rx) = oneshot::channel();
        let params = json!({ "notifications": notifications });
        let listen = peer.listen(params, LISTEN_LIFETIME, ack_tx);
        tokio::pin!(listen);
        let started = Instant::now();
        let mut acked = false;
        let ended = loop {
            tokio::select! {
                ended = &mut listen => break Some(ended),
                accepted = &mut ack_rx, if !acked => {
                    acked = true;
                    if let Ok(accepted) = accepted {
                        tracing::debug!(upstream = %name, accepted = %accepted, "Listening for upstream notifications");
                    }
                }
                // Leaving the loop drops the listen future, which ends the old listen.
                _ = changes.changed() => break None,
                _ = stop.cancelled() => return,
                _ = peer.closed() => return,
            }
        };
        match ended {
            None => {
                backoff = BACKOFF_START;
                continue;
            }
            Some(Ok(_)) => {
                tracing::debug!(upstream = %name, "The upstream ended its listen; reopening")
            }
            Some(Err(e)) => {
                tracing::debug!(upstream = %name, error = %e.message, retry_in = ?backoff, "Listen failed; reopening")
            }
        }
        if started.elapsed() >= HEALTHY_AFTER {
            backoff = BACKOFF_START;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = changes.changed() => {}
            _ = stop.cancelled() => return,
            _ = peer.closed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(capabilities: Value) -> ServerInfo {
        ServerInfo {
            protocol_version: "2026-07-28".into(),
            capabilities,
            server_info: Value::Null,
            instructions: None,
            revisions: vec!["2026-07-28".into()],
        }
    }

    #[test]
    fn the_filter_asks_only_for_what_the_server_offers() {
        let both = info(json!({
            "tools": { "listChanged": true },
            "prompts": {},
            "resources": { "subscribe": true, "listChanged": true },
        }));
        let uris = vec!["file:///a".to_owned()];
        assert_eq!(
            filter(&both, &uris),
            Some(json!({
                "toolsListChanged": true,
                "resourcesListChanged": true,
                "resourceSubscriptions": ["file:///a"],
            }))
        );
        let no_subscribe = info(json!({ "resources": {} }));
        assert_eq!(filter(&no_subscribe, &uris), None);
        assert_eq!(
            filter(&both, &[]).expect("list changes")["resourceSubscriptions"],
            Value::Null
        );
    }

    #[test]
    fn the_set_signals_only_real_changes() {
        let set = ListenSet::default();
        let mut watch = set.watch();
        set.add("a".into());
        assert!(watch.has_changed().unwrap());
        watch.borrow_and_update();
        set.add("a".into());
        set.remove("b");
        assert!(!watch.has_changed().unwrap());
        set.remove("a");
        assert!(watch.has_changed().unwrap());
        assert!(set.uris().is_empty());
    }
}

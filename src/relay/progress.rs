//! Progress tokens, remapped. A client's `progressToken` is only unique among that client's
//! requests, and several clients share one upstream, so every forwarded request carries a
//! gateway-minted token instead; the upstream's `notifications/progress` is mapped back to
//! the client's own token and sent on the stream of the request it belongs to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::protocol::{Message, Notification, methods};

struct Route {
    client_token: Value,
    sink: mpsc::Sender<Message>,
}

#[derive(Default)]
pub struct ProgressTable {
    routes: DashMap<String, Route>,
    next: AtomicU64,
}

/// Keeps a token routed while the request runs; dropping it stops delivery (MCP: progress
/// notifications stop when the request completes).
pub struct Registration {
    table: Arc<ProgressTable>,
    token: String,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.routes.remove(&self.token);
    }
}

impl ProgressTable {
    /// Mints a gateway token for `client_token`, whose notifications go to `sink`.
    pub fn register(
        self: &Arc<Self>,
        client_token: Value,
        sink: mpsc::Sender<Message>,
    ) -> Registration {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let token = format!("manifold-{n}");
        self.routes
            .insert(token.clone(), Route { client_token, sink });
        Registration {
            table: self.clone(),
            token,
        }
    }

    /// Delivers an upstream progress notification to the request it belongs to, with the
    /// client's token restored. False when no running request owns the token.
    pub fn deliver(&self, mut params: Value) -> bool {
        let Some(token) = params.get("progressToken").and_then(Value::as_str) else {
            return false;
        };
        let Some(route) = self.routes.get(token) else {
            return false;
        };
        params["progressToken"] = route.client_token.clone();
        let msg = Message::Notification(Notification::new(methods::PROGRESS, Some(params)));
        // A client that reads its stream slowly loses progress updates, not the result.
        route.sink.try_send(msg).is_ok()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Registration {
    pub fn token(&self) -> &str {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn colliding_client_tokens_get_distinct_gateway_tokens_and_map_back() {
        let table = Arc::new(ProgressTable::default());
        let (tx_a, mut rx_a) = mpsc::channel(4);
        let (tx_b, mut rx_b) = mpsc::channel(4);
        let a = table.register(json!(1), tx_a);
        let b = table.register(json!(1), tx_b);
        assert_ne!(a.token(), b.token());
        assert!(table.deliver(json!({"progressToken": b.token(), "progress": 5})));
        let Ok(Message::Notification(n)) = rx_b.try_recv() else {
            panic!("b got nothing")
        };
        assert_eq!(n.params, Some(json!({"progressToken": 1, "progress": 5})));
        assert!(rx_a.try_recv().is_err());
        drop(a);
        assert!(!table.deliver(json!({"progressToken": "manifold-0", "progress": 1})));
        assert_eq!(table.len(), 1);
    }
}

//! What a `subscriptions/listen` stream of a 2026-07-28 upstream says about itself, as the
//! dispatcher sees it: the subscription id on every message (stripped, since it means
//! nothing to clients), the acknowledgement, and the upstream ending the listen.

use serde_json::Value;

use super::Peer;
use crate::protocol::{ErrorObject, Notification, envelope, methods};

/// Removes `_meta["io.modelcontextprotocol/subscriptionId"]` from a notification (the
/// upstream's listen id means nothing to clients) and returns it.
pub(super) fn take_subscription_id(n: &mut Notification) -> Option<Value> {
    let params = n.params.as_mut()?.as_object_mut()?;
    let meta = params.get_mut("_meta")?.as_object_mut()?;
    let id = meta.remove(envelope::SUBSCRIPTION_ID)?;
    if meta.is_empty() {
        params.remove("_meta");
    }
    Some(id)
}

impl Peer {
    /// Handles what a listen stream says about itself: the acknowledgement (handed to the
    /// listener) and the upstream ending it (`notifications/cancelled` naming the listen,
    /// which then fails). True when the notification is consumed here.
    pub(super) fn listen_event(&self, n: &Notification, listen: Value) -> bool {
        match n.method.as_str() {
            methods::SUBSCRIPTIONS_ACKNOWLEDGED => {
                let accepted = n
                    .params
                    .as_ref()
                    .and_then(|p| p.get("notifications"))
                    .cloned()
                    .unwrap_or(Value::Null);
                let ack = listen
                    .as_i64()
                    .and_then(|id| self.lock_pending().get_mut(&id)?.ack.take());
                match ack {
                    Some(ack) => {
                        let _ = ack.send(accepted);
                    }
                    None => {
                        tracing::debug!(upstream = %self.upstream, listen = %listen, "Acknowledgement of an unknown listen")
                    }
                }
                true
            }
            methods::CANCELLED => self.ends_listen(n),
            _ => false,
        }
    }

    /// `notifications/cancelled` from a 2026-07-28 server is only ever the end of a listen
    /// (it sends no requests that could be cancelled): that listen request fails, so its
    /// owner reopens it. Anything else is not consumed here.
    pub(super) fn ends_listen(&self, n: &Notification) -> bool {
        if n.method != methods::CANCELLED {
            return false;
        }
        let Some(id) = n
            .params
            .as_ref()
            .and_then(|p| p.get("requestId"))
            .and_then(Value::as_i64)
        else {
            return false;
        };
        let mut pending = self.lock_pending();
        if !pending.get(&id).is_some_and(|w| w.listen) {
            return false;
        }
        let Some(waiting) = pending.remove(&id) else {
            return false;
        };
        drop(pending);
        let why = "the upstream ended the subscription";
        let _ = waiting
            .tx
            .send(Err(ErrorObject::upstream_unavailable(&self.upstream, why)));
        true
    }
}

//! Resource subscriptions: `resources/subscribe` routed to the URI's owner (once per URI,
//! however many clients subscribe), `notifications/resources/updated` delivered to exactly
//! the clients subscribed to that URI (or to a resource it is a sub-resource of), and
//! subscriptions replayed when an upstream reconnects.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::protocol::{ErrorObject, Message, Notification, methods};

struct Subscription {
    upstream: usize,
    sessions: HashSet<String>,
}

#[derive(Default)]
pub struct Subscriptions {
    by_uri: Mutex<HashMap<String, Subscription>>,
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Subscription>> {
        self.by_uri.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub async fn subscribe(gateway: &Gateway, session: &str, uri: &str) -> Result<Value, ErrorObject> {
    let owner = gateway
        .catalog()
        .resource_owner(uri)
        .ok_or_else(|| ErrorObject::resource_not_found(uri))?;
    let upstream = &gateway.upstreams[owner];
    let supports = upstream.server_info().is_some_and(|i| {
        i.capabilities.pointer("/resources/subscribe") == Some(&Value::Bool(true))
    });
    if !supports {
        return Err(ErrorObject::method_not_found(methods::RESOURCES_SUBSCRIBE)
            .with_data(json!({ "uri": uri, "upstream": upstream.name() })));
    }
    let first = {
        let mut subs = gateway.relay.subscriptions.lock();
        let entry = subs.entry(uri.to_owned()).or_insert_with(|| Subscription {
            upstream: owner,
            sessions: HashSet::new(),
        });
        let first = entry.sessions.is_empty();
        entry.sessions.insert(session.to_owned());
        first
    };
    if first
        && let Err(e) = upstream
            .request(
                None,
                methods::RESOURCES_SUBSCRIBE,
                Some(json!({ "uri": uri })),
            )
            .await
    {
        remove(gateway, session, uri);
        return Err(e);
    }
    Ok(json!({}))
}

pub async fn unsubscribe(
    gateway: &Gateway,
    session: &str,
    uri: &str,
) -> Result<Value, ErrorObject> {
    if let Some(owner) = remove(gateway, session, uri) {
        let _ = gateway.upstreams[owner]
            .request(
                None,
                methods::RESOURCES_UNSUBSCRIBE,
                Some(json!({ "uri": uri })),
            )
            .await;
    }
    Ok(json!({}))
}

/// Drops one session's subscription; returns the owner if nobody is subscribed any more.
fn remove(gateway: &Gateway, session: &str, uri: &str) -> Option<usize> {
    let mut subs = gateway.relay.subscriptions.lock();
    let entry = subs.get_mut(uri)?;
    entry.sessions.remove(session);
    if entry.sessions.is_empty() {
        return subs.remove(uri).map(|s| s.upstream);
    }
    None
}

pub async fn session_closed(gateway: &Gateway, session: &str) {
    let uris: Vec<String> = gateway
        .relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(_, s)| s.sessions.contains(session))
        .map(|(u, _)| u.clone())
        .collect();
    for uri in uris {
        let _ = unsubscribe(gateway, session, &uri).await;
    }
}

pub async fn replay(gateway: &Gateway, upstream: usize) {
    let uris: Vec<String> = gateway
        .relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(_, s)| s.upstream == upstream)
        .map(|(u, _)| u.clone())
        .collect();
    for uri in uris {
        let _ = gateway.upstreams[upstream]
            .request(
                None,
                methods::RESOURCES_SUBSCRIBE,
                Some(json!({ "uri": uri })),
            )
            .await;
    }
}

/// Delivers an update to every session subscribed to the URI, or to a resource it lies under.
pub fn deliver(gateway: &Gateway, upstream: usize, params: Value) -> bool {
    let Some(uri) = super::str_field(&params, "uri") else {
        return false;
    };
    let targets: HashSet<String> = gateway
        .relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(sub, s)| s.upstream == upstream && (uri == sub.as_str() || is_under(uri, sub)))
        .flat_map(|(_, s)| s.sessions.iter().cloned())
        .collect();
    let msg = Message::Notification(Notification::new(methods::RESOURCES_UPDATED, Some(params)));
    let mut delivered = false;
    for id in targets {
        if let Some(session) = gateway.sessions.peek(&id) {
            delivered |= session.send(msg.clone());
        }
    }
    delivered
}

fn is_under(uri: &str, parent: &str) -> bool {
    uri.strip_prefix(parent).is_some_and(|rest| {
        parent.ends_with('/')
            || rest.starts_with('/')
            || rest.starts_with('#')
            || rest.starts_with('?')
    })
}

//! Resource subscriptions: `resources/subscribe` routed to the URI's owner and
//! `notifications/resources/updated` delivered to exactly the clients subscribed to that URI
//! (or to a resource it lies under).
//!
//! Where clients share the upstream's session (stdio `shared`), the gateway subscribes once
//! per URI however many clients do, unsubscribes when the last one leaves, and replays the
//! subscriptions when the upstream reconnects. Where each client has its own upstream session
//! (HTTP, stdio `per_session`), each client subscribes on its own session, so the upstream's
//! own per-session logic applies, and an update arriving on a client's session is that
//! client's alone.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::Relay;
use crate::protocol::{Era, ErrorObject, Message, Notification, methods};
use crate::session::Session;
use crate::upstream::peer::Origin;

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

pub async fn subscribe(relay: &Relay, session: &Session, uri: &str) -> Result<Value, ErrorObject> {
    subscribe_as(relay, &session.id, Some(session), uri).await
}

/// Subscribes a 2026-07-28 listen stream (key from `listeners::subscriber_key`) to the URIs
/// it names; returns the ones honoured (those an upstream owns and can watch).
pub async fn listen(relay: &Relay, subscriber: &str, uris: &[String]) -> Vec<String> {
    let mut honoured = Vec::with_capacity(uris.len());
    for uri in uris {
        match subscribe_as(relay, subscriber, None, uri).await {
            Ok(_) => honoured.push(uri.clone()),
            Err(e) => {
                tracing::debug!(uri = %uri, error = %e.message, "Listen stream cannot watch this resource")
            }
        }
    }
    honoured
}

/// A subscriber: a handshake-era session (which subscribes on its own upstream session
/// where it has one), or a listen stream (`session` = `None`, always the shared session).
async fn subscribe_as(
    relay: &Relay,
    subscriber: &str,
    session: Option<&Session>,
    uri: &str,
) -> Result<Value, ErrorObject> {
    // A session is a handshake-era client; a listen stream a stateless one.
    let era = if session.is_some() {
        Era::Handshake
    } else {
        Era::Stateless
    };
    let owner = relay
        .upstreams
        .catalog(era)
        .resource_owner(uri)
        .ok_or_else(|| ErrorObject::resource_not_found(uri))?;
    let upstream = &relay.upstreams[owner];
    let supports = upstream.server_info().is_some_and(|i| {
        i.capabilities.pointer("/resources/subscribe") == Some(&Value::Bool(true))
    });
    if !supports {
        let data = json!({ "uri": uri, "upstream": upstream.name() });
        return Err(ErrorObject::method_not_found(methods::RESOURCES_SUBSCRIBE).with_data(data));
    }
    let first = {
        let mut subs = relay.subscriptions.lock();
        let entry = subs.entry(uri.to_owned()).or_insert_with(|| Subscription {
            upstream: owner,
            sessions: HashSet::new(),
        });
        let first = entry.sessions.is_empty();
        entry.sessions.insert(subscriber.to_owned());
        first
    };
    let origin = session.filter(|_| upstream.dedicated()).map(super::origin);
    if (first || origin.is_some())
        && let Err(e) = upstream
            .request(
                origin,
                methods::RESOURCES_SUBSCRIBE,
                Some(json!({ "uri": uri })),
            )
            .await
    {
        remove(relay, subscriber, uri);
        return Err(e);
    }
    Ok(json!({}))
}

pub async fn unsubscribe(
    relay: &Relay,
    session: &Session,
    uri: &str,
) -> Result<Value, ErrorObject> {
    let last = remove(relay, &session.id, uri);
    let owner = relay.upstreams.catalog(Era::Handshake).resource_owner(uri);
    match owner.map(|o| &relay.upstreams[o]) {
        Some(upstream) if upstream.dedicated() => {
            let params = Some(json!({ "uri": uri }));
            let _ = upstream
                .request(
                    Some(super::origin(session)),
                    methods::RESOURCES_UNSUBSCRIBE,
                    params,
                )
                .await;
        }
        _ => {
            if let Some(owner) = last {
                let _ = relay.upstreams[owner]
                    .request(
                        None,
                        methods::RESOURCES_UNSUBSCRIBE,
                        Some(json!({ "uri": uri })),
                    )
                    .await;
            }
        }
    }
    Ok(json!({}))
}

/// Drops one session's subscription; returns the owner if nobody is subscribed any more.
fn remove(relay: &Relay, session: &str, uri: &str) -> Option<usize> {
    let mut subs = relay.subscriptions.lock();
    let entry = subs.get_mut(uri)?;
    entry.sessions.remove(session);
    if entry.sessions.is_empty() {
        return subs.remove(uri).map(|s| s.upstream);
    }
    None
}

/// A session ended. Shared upstream sessions are unsubscribed from URIs nobody watches any
/// more; a client's own upstream session closes with it, subscriptions included.
pub async fn session_closed(relay: &Relay, session: &str) {
    let uris: Vec<String> = relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(_, s)| s.sessions.contains(session))
        .map(|(u, _)| u.clone())
        .collect();
    // A listen stream watches on the shared session even where sessions have links.
    let shared = is_listener(session);
    for uri in uris {
        if let Some(owner) = remove(relay, session, &uri)
            && (shared || !relay.upstreams[owner].dedicated())
        {
            let _ = relay.upstreams[owner]
                .request(
                    None,
                    methods::RESOURCES_UNSUBSCRIBE,
                    Some(json!({ "uri": uri })),
                )
                .await;
        }
    }
}

/// The shared session reconnected: subscribe it again to every URI someone watches.
pub async fn replay(relay: &Relay, upstream: usize) {
    let dedicated = relay.upstreams[upstream].dedicated();
    let uris: Vec<String> = relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(_, s)| {
            s.upstream == upstream && (!dedicated || s.sessions.iter().any(|k| is_listener(k)))
        })
        .map(|(u, _)| u.clone())
        .collect();
    for uri in uris {
        let _ = relay.upstreams[upstream]
            .request(
                None,
                methods::RESOURCES_SUBSCRIBE,
                Some(json!({ "uri": uri })),
            )
            .await;
    }
}

/// Delivers an update to the sessions subscribed to the URI (or to a resource it lies
/// under): all of them for a shared upstream session, only the session's own client for a
/// per-client one.
pub fn deliver(relay: &Relay, upstream: usize, params: Value, origin: Option<&Origin>) -> bool {
    let Some(uri) = super::str_field(&params, "uri") else {
        return false;
    };
    // Where sessions have links of their own, an update on a link is its session's alone,
    // and one on the shared session is for the listen streams (sessions hear theirs on
    // their links).
    let dedicated = relay.upstreams.get(upstream).is_some_and(|u| u.dedicated());
    let link = origin
        .and_then(|o| o.session.as_deref())
        .filter(|_| dedicated);
    let wanted = |key: &str| match link {
        Some(own) => key == own,
        None => !dedicated || is_listener(key),
    };
    let targets: HashSet<String> = relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(sub, s)| s.upstream == upstream && (uri == sub.as_str() || is_under(uri, sub)))
        .flat_map(|(_, s)| s.sessions.iter().filter(|k| wanted(k)).cloned())
        .collect();
    let mut delivered = relay.listeners.resource_updated(&params, &targets);
    let msg = Message::Notification(Notification::new(methods::RESOURCES_UPDATED, Some(params)));
    for id in targets.iter().filter(|k| !is_listener(k)) {
        if let Some(session) = relay.sessions.peek(id) {
            delivered |= session.send(msg.clone());
        }
    }
    delivered
}

fn is_listener(subscriber: &str) -> bool {
    subscriber.starts_with("listen:")
}

fn is_under(uri: &str, parent: &str) -> bool {
    uri.strip_prefix(parent).is_some_and(|rest| {
        parent.ends_with('/')
            || rest.starts_with('/')
            || rest.starts_with('#')
            || rest.starts_with('?')
    })
}

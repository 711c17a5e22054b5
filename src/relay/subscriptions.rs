//! Resource subscriptions: `resources/subscribe` routed to the URI's owner and
//! `notifications/resources/updated` delivered to exactly the clients subscribed to that URI
//! (or to a resource it lies under).
//!
//! Each subscriber is carried by one upstream session (its [`Carrier`]): a client's own link
//! where it has one (HTTP, stdio `per_session`), the handshake-era session of a dual-era
//! server in stdio `shared` mode, or else the upstream's shared session (a listen stream
//! always is). On a carrier shared by several subscribers the gateway subscribes once per URI
//! however many subscribe, unsubscribes when the last one leaves, and subscribes again when
//! the upstream reconnects; on a link the upstream's own per-session logic applies, and an
//! update arriving on a client's link is that client's alone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::Relay;
use crate::protocol::{Era, ErrorObject, Message, Notification, methods};
use crate::session::{Principal, Session};
use crate::upstream::Upstream;
use crate::upstream::peer::Origin;

/// The upstream session a subscriber's subscription lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    /// The upstream's shared session (the stateless one of a dual-era server).
    Shared,
    /// A dual-era server's handshake-era session, shared by its handshake-era clients.
    Side,
    /// The client's own link.
    Link,
}

impl Carrier {
    /// Where `subscriber` (a session id, or a listen stream's key) subscribes on `upstream`.
    fn of(upstream: &Upstream, subscriber: &str) -> Carrier {
        if is_listener(subscriber) {
            Carrier::Shared
        } else if upstream.dedicated() {
            Carrier::Link
        } else if upstream.dual() {
            Carrier::Side
        } else {
            Carrier::Shared
        }
    }

    /// The origin a request on this carrier goes with: none for the shared session, the
    /// client's session (which routes it to the side session or its link) otherwise.
    fn origin(self, session: Option<&Session>, subscriber: &str) -> Option<Arc<Origin>> {
        match (self, session) {
            (Carrier::Shared, _) => None,
            (_, Some(session)) => Some(super::origin(session)),
            // The session is gone (it closed): enough to route to the side session.
            (_, None) => Some(Arc::new(Origin::for_session(
                subscriber.to_owned(),
                json!({}),
                Arc::new(Principal::anonymous()),
            ))),
        }
    }
}

struct Subscription {
    upstream: usize,
    /// Subscriber key → the session carrying its subscription.
    subscribers: HashMap<String, Carrier>,
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
    let done = subscribe_as(relay, &session.id, Some(session), uri).await?;
    session.note_subscription(uri, true);
    Ok(done)
}

/// Subscribes a 2026-07-28 listen stream (key from `listeners::subscriber_key`) to the URIs
/// it names; returns the ones honoured (those an upstream owns and can watch). When replicas
/// share sessions the others watch them too: an upstream session of another replica may be
/// the one the server reports the change on.
pub async fn listen(relay: &Relay, subscriber: &str, uris: &[String]) -> Vec<String> {
    let honoured = listen_for(relay, subscriber, uris).await;
    if let Some(shared) = relay.sessions.shared()
        && !honoured.is_empty()
    {
        let listen = crate::session::shared::Broadcast::Listen {
            key: subscriber.to_owned(),
            uris: honoured.clone(),
            from: shared.replica,
        };
        if let Err(e) = shared.announce(&listen).await {
            tracing::warn!(error = %e, "Could not tell the other replicas what a listen stream watches");
        }
    }
    honoured
}

/// [`listen`] on this replica only (also for another replica's listen stream).
pub async fn listen_for(relay: &Relay, subscriber: &str, uris: &[String]) -> Vec<String> {
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

/// A subscriber: a handshake-era session, or a listen stream (`session` = `None`).
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
    let upstream = &relay.upstreams.at(owner);
    let supports = upstream.server_info().is_some_and(|i| {
        i.capabilities.pointer("/resources/subscribe") == Some(&Value::Bool(true))
    });
    if !supports {
        let data = json!({ "uri": uri, "upstream": upstream.name() });
        return Err(ErrorObject::method_not_found(methods::RESOURCES_SUBSCRIBE).with_data(data));
    }
    let carrier = Carrier::of(upstream, subscriber);
    let first = {
        let mut subs = relay.subscriptions.lock();
        let entry = subs.entry(uri.to_owned()).or_insert_with(|| Subscription {
            upstream: owner,
            subscribers: HashMap::new(),
        });
        let first = carrier == Carrier::Link || !entry.subscribers.values().any(|c| *c == carrier);
        entry.subscribers.insert(subscriber.to_owned(), carrier);
        first
    };
    if first
        && let Err(e) = upstream
            .request(
                carrier.origin(session, subscriber),
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
    session.note_subscription(uri, false);
    if let Some((owner, carrier)) = remove(relay, &session.id, uri) {
        let _ = relay
            .upstreams
            .at(owner)
            .request(
                carrier.origin(Some(session), &session.id),
                methods::RESOURCES_UNSUBSCRIBE,
                Some(json!({ "uri": uri })),
            )
            .await;
    }
    Ok(json!({}))
}

/// Drops one subscriber's subscription; returns the owner and the carrier when that carrier
/// has nobody left for the URI (a link always: it carries one subscriber).
fn remove(relay: &Relay, subscriber: &str, uri: &str) -> Option<(usize, Carrier)> {
    let mut subs = relay.subscriptions.lock();
    let entry = subs.get_mut(uri)?;
    let carrier = entry.subscribers.remove(subscriber)?;
    let owner = entry.upstream;
    let last = carrier == Carrier::Link || !entry.subscribers.values().any(|c| *c == carrier);
    if entry.subscribers.is_empty() {
        subs.remove(uri);
    }
    last.then_some((owner, carrier))
}

/// A subscriber went away (a session ended, a listen stream closed): the carriers it leaves
/// empty are unsubscribed, except a client's link, which closes with its session. The other
/// replicas stop watching for a listen stream of this one.
pub async fn session_closed(relay: &Relay, subscriber: &str) {
    if let Some(shared) = relay.sessions.shared()
        && is_listener(subscriber)
        && super::bus::remote_listener_of(subscriber).is_none()
    {
        let unlisten = crate::session::shared::Broadcast::Unlisten {
            key: subscriber.to_owned(),
            from: shared.replica,
        };
        if let Err(e) = shared.announce(&unlisten).await {
            tracing::warn!(error = %e, "Could not tell the other replicas a listen stream closed");
        }
    }
    let uris: Vec<String> = relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(_, s)| s.subscribers.contains_key(subscriber))
        .map(|(u, _)| u.clone())
        .collect();
    for uri in uris {
        if let Some((owner, carrier)) = remove(relay, subscriber, &uri)
            && carrier != Carrier::Link
        {
            let _ = relay
                .upstreams
                .at(owner)
                .request(
                    carrier.origin(None, subscriber),
                    methods::RESOURCES_UNSUBSCRIBE,
                    Some(json!({ "uri": uri })),
                )
                .await;
        }
    }
}

/// The upstream reconnected: subscribe its shared sessions again to every URI someone
/// watches through them (a link re-opens with its client's next request).
/// A reload replaced the upstream at `from` by a new incarnation at `to`: its subscribers
/// are now the new one's (which [`replay`] then subscribes).
pub fn moved(relay: &Relay, from: usize, to: usize) {
    for subscription in relay.subscriptions.lock().values_mut() {
        if subscription.upstream == from {
            subscription.upstream = to;
        }
    }
}

pub async fn replay(relay: &Relay, upstream: usize) {
    let wanted: Vec<(String, Carrier, String)> = relay
        .subscriptions
        .lock()
        .iter()
        .filter(|(_, s)| s.upstream == upstream)
        .flat_map(|(uri, s)| {
            let mut carriers: Vec<(String, Carrier, String)> = Vec::new();
            for (key, carrier) in &s.subscribers {
                if *carrier != Carrier::Link && !carriers.iter().any(|(_, c, _)| c == carrier) {
                    carriers.push((uri.clone(), *carrier, key.clone()));
                }
            }
            carriers
        })
        .collect();
    for (uri, carrier, subscriber) in wanted {
        let _ = relay
            .upstreams
            .at(upstream)
            .request(
                carrier.origin(None, &subscriber),
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
        .flat_map(|(_, s)| s.subscribers.keys().filter(|k| wanted(k)).cloned())
        .collect();
    let mut delivered = relay.listeners.resource_updated(&params, &targets);
    let remote: Vec<String> = targets
        .iter()
        .filter(|k| super::bus::remote_listener_of(k).is_some())
        .cloned()
        .collect();
    if !remote.is_empty() {
        super::bus::forward_listen_update(relay, remote, &params);
        delivered = true;
    }
    let msg = Message::Notification(Notification::new(methods::RESOURCES_UPDATED, Some(params)));
    for id in targets.iter().filter(|k| !is_listener(k)) {
        if let Some(session) = relay.sessions.peek(id) {
            // Sent to the replica holding the client's stream, which merges the copies of
            // one change that several replicas' upstreams report.
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

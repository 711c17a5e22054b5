//! The way back: what upstreams send that is not a response — catalog changes,
//! notifications, server→client requests — routed to the clients it concerns.

pub mod client_requests;
pub mod listeners;
pub mod logging;
pub mod subscriptions;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::aggregate::catalog::Kind;
use crate::gateway::Gateway;
use crate::protocol::{Message, Notification, methods};
use crate::session::Session;
use crate::upstream::peer::Origin;
use crate::upstream::supervisor::UpstreamEvent;

/// State of the way back.
#[derive(Default)]
pub struct Relay {
    pub client_requests: client_requests::ClientRequests,
    pub subscriptions: subscriptions::Subscriptions,
    /// `subscriptions/listen` streams of 2026-07-28 clients.
    pub listeners: listeners::Listeners,
}

/// A client session ended: release what the relay held for it.
pub async fn session_closed(gateway: &Gateway, session: &str) {
    subscriptions::session_closed(gateway, session).await;
    client_requests::session_closed(gateway, session).await;
    // An upstream session that owns a passed-through task lives until the task expires.
    if let Some(hold) = gateway.tasks.release_link(session) {
        let gw = gateway.arc();
        let session = session.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = gw.shutdown.cancelled() => {}
            }
            for upstream in &gw.upstreams {
                upstream.links.close(&session).await;
            }
        });
        return;
    }
    for upstream in &gateway.upstreams {
        upstream.links.close(session).await;
    }
}

/// Processes upstream events until every supervisor is gone.
pub async fn run(gateway: Arc<Gateway>, mut events: mpsc::Receiver<UpstreamEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            UpstreamEvent::CatalogChanged {
                kinds, announced, ..
            } => {
                let announced = if announced { kinds } else { Vec::new() };
                catalog_changed(&gateway, &announced)
            }
            UpstreamEvent::Connected { upstream } => {
                // Replaying sends requests upstream; keep the event loop free meanwhile.
                let gw = gateway.clone();
                tokio::spawn(async move {
                    subscriptions::replay(&gw, upstream).await;
                    logging::replay(&gw, upstream).await;
                });
            }
            UpstreamEvent::Notification {
                upstream,
                notification,
                origin,
            } => notify(&gateway, upstream, notification, origin),
            UpstreamEvent::Request {
                upstream,
                peer,
                request,
                origin,
            } => client_requests::forward(&gateway, upstream, peer, request, origin).await,
        }
    }
}

/// Rebuilds the merged catalog and sends each list_changed the clients are owed: for every
/// list whose visible items differ, and for the lists an upstream announced as changed.
fn catalog_changed(gateway: &Gateway, announced: &[Kind]) {
    let (before, after) = gateway.rebuild_catalog();
    let mut owed = changed_lists(&before, &after);
    for kind in announced {
        if !owed.contains(&kind.list_changed()) {
            owed.push(kind.list_changed());
        }
    }
    for method in owed {
        let msg = Message::Notification(Notification::new(method, None));
        let reached =
            gateway.sessions.broadcast(&msg) + gateway.relay.listeners.list_changed(method);
        tracing::debug!(
            notification = method,
            sessions = reached,
            "Sent list_changed"
        );
    }
}

/// The list_changed notifications owed to clients: one per list whose visible items differ.
fn changed_lists(
    before: &crate::aggregate::merge::Catalog,
    after: &crate::aggregate::merge::Catalog,
) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        let same = before
            .all(kind)
            .map(|(_, v)| v)
            .eq(after.all(kind).map(|(_, v)| v));
        if !same && !methods.contains(&kind.list_changed()) {
            methods.push(kind.list_changed());
        }
    }
    methods
}

/// The dispatcher's hook: every notification but list_changed (which needs an async
/// re-fetch by the supervisor) is relayed right away, in the order the upstream sent it.
pub fn consume(
    gateway: &Gateway,
    upstream: usize,
    n: &Notification,
    origin: Option<&Arc<Origin>>,
) -> bool {
    if n.method.ends_with("/list_changed") {
        return false;
    }
    notify(gateway, upstream, n.clone(), origin.cloned());
    true
}

fn notify(gateway: &Gateway, upstream: usize, n: Notification, origin: Option<Arc<Origin>>) {
    let name = gateway
        .upstreams
        .get(upstream)
        .map(|u| u.name().to_owned())
        .unwrap_or_default();
    let delivered = match (n.method.as_str(), n.params) {
        (methods::PROGRESS, Some(params)) => gateway.progress.deliver(params),
        (methods::LOG_MESSAGE, Some(params)) => {
            logging::deliver(gateway, &name, params, origin.as_deref())
        }
        (methods::RESOURCES_UPDATED, Some(params)) => {
            subscriptions::deliver(gateway, upstream, params, origin.as_deref())
        }
        (methods::TASKS_STATUS, Some(params)) => {
            let gw = gateway.arc();
            tokio::spawn(async move {
                crate::tasks::passthrough::status_notification(&gw, upstream, params).await;
            });
            true
        }
        (methods::CANCELLED, Some(params)) => {
            client_requests::cancelled_by_upstream(gateway, upstream, params)
        }
        (methods::ELICITATION_COMPLETE, params) => {
            let msg =
                Message::Notification(Notification::new(methods::ELICITATION_COMPLETE, params));
            match origin
                .as_deref()
                .and_then(|o| gateway.sessions.peek(o.session.as_deref()?).map(|s| (s, o)))
            {
                Some((session, o)) => send(&session, msg, o.sink.as_ref()),
                None => gateway.sessions.broadcast(&msg) > 0,
            }
        }
        _ => false,
    };
    if !delivered {
        tracing::debug!(upstream = %name, method = %n.method, "Upstream notification not delivered to any client");
    }
}

/// Sends to a client: on the response stream of the request it belongs to while that is
/// open, else on the session's GET stream.
pub fn send(session: &Session, msg: Message, sink: Option<&mpsc::Sender<Message>>) -> bool {
    if let Some(sink) = sink.filter(|s| !s.is_closed()) {
        match sink.try_send(msg) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m)) => {
                return session.send(m);
            }
        }
    }
    session.send(msg)
}

/// The origin for gateway-initiated traffic on behalf of a session (no request stream).
pub fn origin(session: &Session) -> Arc<Origin> {
    Arc::new(Origin::for_session(
        session.id.clone(),
        session.client_capabilities.clone(),
        session.principal.clone(),
    ))
}

/// A string field of notification params.
fn str_field<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

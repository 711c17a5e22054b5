//! The way back: what upstreams send that is not a response — catalog changes,
//! notifications, server→client requests — routed to the clients it concerns.

pub mod bus;
pub mod client_requests;
pub mod listeners;
pub mod logging;
pub mod progress;
pub mod subscriptions;
pub mod tasks;

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::aggregate::catalog::Kind;
use crate::protocol::{Era, Message, Notification, methods};
use crate::session::tasks::record::now_ms;
use crate::session::tasks::store::TaskStore;
use crate::session::{Session, SessionStore};
use crate::upstream::Upstreams;
use crate::upstream::peer::Origin;
use crate::upstream::supervisor::UpstreamEvent;

/// The way back's state, and the handles it delivers with.
pub struct Relay {
    /// Who sent what, and what each upstream's session is.
    pub upstreams: Arc<Upstreams>,
    /// Where messages for handshake-era clients go.
    pub sessions: Arc<SessionStore>,
    /// Task records, to map an upstream's task ids to the gateway's.
    pub tasks: Arc<dyn TaskStore>,
    /// Progress tokens of requests in flight, gateway token → client token and stream.
    pub progress: Arc<progress::ProgressTable>,
    pub client_requests: client_requests::ClientRequests,
    pub subscriptions: subscriptions::Subscriptions,
    /// `subscriptions/listen` streams of 2026-07-28 clients.
    pub listeners: listeners::Listeners,
    /// Client sessions whose per-client upstream link owns a passed-through task: session →
    /// until when (ms since the epoch) the link must outlive the session.
    link_holds: DashMap<String, u64>,
    /// Cancelled when the gateway shuts down: held links close at once.
    shutdown: CancellationToken,
    me: Weak<Relay>,
}

impl Relay {
    pub fn new(
        upstreams: Arc<Upstreams>,
        sessions: Arc<SessionStore>,
        tasks: Arc<dyn TaskStore>,
        shutdown: CancellationToken,
    ) -> Arc<Relay> {
        Arc::new_cyclic(|me| Relay {
            upstreams,
            sessions,
            tasks,
            progress: Default::default(),
            client_requests: Default::default(),
            subscriptions: Default::default(),
            listeners: Default::default(),
            link_holds: DashMap::new(),
            shutdown,
            me: me.clone(),
        })
    }

    /// A counted handle, for work spawned past the call that started it.
    fn arc(&self) -> Arc<Relay> {
        self.me
            .upgrade()
            .expect("the relay is alive while its methods run")
    }

    /// Keeps the upstream links of `session` open until `until_ms`, for an upstream task
    /// one of them owns.
    pub fn hold_links(&self, session: &str, until_ms: u64) {
        let mut hold = self.link_holds.entry(session.to_owned()).or_insert(0);
        *hold = (*hold).max(until_ms);
    }

    /// A task that held the links of `session` until `until_ms` ended early: its hold goes
    /// (unless a later task holds them longer).
    pub fn end_hold(&self, session: &str, until_ms: u64) {
        self.link_holds
            .remove_if(session, |_, hold| *hold <= until_ms);
    }

    /// How long the links of a closed session must stay open for their tasks, if at all.
    fn release_links(&self, session: &str) -> Option<Duration> {
        let (_, until) = self.link_holds.remove(session)?;
        let left = until.saturating_sub(now_ms());
        (left > 0).then(|| Duration::from_millis(left))
    }
}

/// A client session ended: release what the relay held for it.
pub async fn session_closed(relay: &Relay, session: &str) {
    subscriptions::session_closed(relay, session).await;
    client_requests::session_closed(relay, session).await;
    // An upstream session that owns a passed-through task lives until the task expires.
    if let Some(hold) = relay.release_links(session) {
        let relay = relay.arc();
        let session = session.to_owned();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = relay.shutdown.cancelled() => {}
            }
            for upstream in relay.upstreams.iter() {
                upstream.links.close(&session).await;
            }
        });
        return;
    }
    for upstream in relay.upstreams.iter() {
        upstream.links.close(session).await;
    }
}

/// Processes upstream events until every supervisor is gone.
///
/// Catalog changes that are already queued one after another (upstreams starting together,
/// a burst of `list_changed`) are merged into one rebuild: every rebuild merges every
/// upstream's catalog, and the clients are owed one notification per changed list either
/// way. Events of other kinds are never overtaken.
pub async fn run(relay: Arc<Relay>, mut events: mpsc::Receiver<UpstreamEvent>) {
    let mut pending = None;
    loop {
        let event = match pending.take() {
            Some(event) => event,
            None => match events.recv().await {
                Some(event) => event,
                None => return,
            },
        };
        match event {
            UpstreamEvent::CatalogChanged {
                kinds, announced, ..
            } => {
                let mut owed = if announced { kinds } else { Vec::new() };
                while let Ok(next) = events.try_recv() {
                    match next {
                        UpstreamEvent::CatalogChanged {
                            kinds, announced, ..
                        } => {
                            for kind in kinds.into_iter().filter(|_| announced) {
                                if !owed.contains(&kind) {
                                    owed.push(kind);
                                }
                            }
                        }
                        other => {
                            pending = Some(other);
                            break;
                        }
                    }
                }
                catalog_changed(&relay, &owed)
            }
            UpstreamEvent::Connected { upstream } => {
                // Replaying sends requests upstream; keep the event loop free meanwhile.
                let gw = relay.clone();
                tokio::spawn(async move {
                    subscriptions::replay(&gw, upstream).await;
                    logging::replay(&gw, upstream).await;
                });
            }
            UpstreamEvent::Notification {
                upstream,
                notification,
                origin,
            } => notify(&relay, upstream, notification, origin),
            UpstreamEvent::Request {
                upstream,
                peer,
                request,
                origin,
            } => client_requests::forward(&relay, upstream, peer, request, origin).await,
        }
    }
}

/// Rebuilds the merged catalogs and sends each list_changed the clients are owed, each era's
/// clients for their era's catalog (handshake-era sessions, stateless listen streams): for
/// every list whose visible items differ, and for the lists an upstream announced as changed.
fn catalog_changed(relay: &Relay, announced: &[Kind]) {
    for rebuilt in relay.upstreams.rebuild() {
        let mut owed = changed_lists(&rebuilt.before, &rebuilt.after);
        for kind in announced {
            if !owed.contains(&kind.list_changed()) {
                owed.push(kind.list_changed());
            }
        }
        for method in owed {
            let reached = match rebuilt.era {
                Era::Handshake => {
                    let msg = Message::Notification(Notification::new(method, None));
                    relay.sessions.broadcast(&msg)
                }
                Era::Stateless => relay.listeners.list_changed(method),
            };
            tracing::debug!(
                notification = method,
                era = rebuilt.era.name(),
                clients = reached,
                "Sent list_changed"
            );
        }
    }
}

/// The list_changed notifications owed to clients: one per list whose visible items differ.
fn changed_lists(
    before: &crate::aggregate::merge::Catalog,
    after: &crate::aggregate::merge::Catalog,
) -> Vec<&'static str> {
    let mut methods: Vec<&'static str> = Vec::new();
    for kind in Kind::ALL {
        if !before.lists_alike(after, kind) && !methods.contains(&kind.list_changed()) {
            methods.push(kind.list_changed());
        }
    }
    methods
}

/// The dispatcher's hook: every notification but list_changed (which needs an async
/// re-fetch by the supervisor) is relayed right away, in the order the upstream sent it.
pub fn consume(
    relay: &Relay,
    upstream: usize,
    n: &Notification,
    origin: Option<&Arc<Origin>>,
) -> bool {
    if n.method.ends_with("/list_changed") {
        return false;
    }
    notify(relay, upstream, n.clone(), origin.cloned());
    true
}

fn notify(relay: &Relay, upstream: usize, n: Notification, origin: Option<Arc<Origin>>) {
    let name = relay
        .upstreams
        .get(upstream)
        .map(|u| u.name().to_owned())
        .unwrap_or_default();
    let delivered = match (n.method.as_str(), n.params) {
        (methods::PROGRESS, Some(params)) => relay.progress.deliver(params),
        (methods::LOG_MESSAGE, Some(params)) => {
            logging::deliver(relay, &name, params, origin.as_deref())
        }
        (methods::RESOURCES_UPDATED, Some(params)) => {
            subscriptions::deliver(relay, upstream, params, origin.as_deref())
        }
        (methods::TASKS_STATUS, Some(params)) => {
            let relay = relay.arc();
            tokio::spawn(async move {
                tasks::status_notification(&relay, upstream, params).await;
            });
            true
        }
        (methods::CANCELLED, Some(params)) => {
            client_requests::cancelled_by_upstream(relay, upstream, params)
        }
        (methods::ELICITATION_COMPLETE, params) => {
            let msg =
                Message::Notification(Notification::new(methods::ELICITATION_COMPLETE, params));
            match origin
                .as_deref()
                .and_then(|o| relay.sessions.peek(o.session.as_deref()?).map(|s| (s, o)))
            {
                Some((session, o)) => send(&session, msg, o.sink.as_ref()),
                None => relay.sessions.broadcast(&msg) > 0,
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

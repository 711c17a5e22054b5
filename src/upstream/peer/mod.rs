//! A JSON-RPC client over one upstream connection: ids, pending requests, timeouts.
//!
//! The transport hands the peer a stream of [`Inbound`] items; one dispatcher task matches
//! responses to pending requests and passes everything else (notifications and server→client
//! requests) to the upstream's owner as [`PeerEvent`]s. When the stream ends, every request
//! still pending fails at once with an error that names the upstream and the reason, so no
//! caller waits for a timeout on a dead process.

// Keyed by the gateway's own request ids: foldhash, not SipHash.
use hashbrown::HashMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

mod origin;
mod stream;

pub use origin::{InputNeeded, Origin};
use stream::take_subscription_id;

use super::http::HttpLink;
use crate::protocol::arguments::Params;
use crate::protocol::{
    Era, ErrorObject, Id, Message, Notification, Payload, Request, Response, envelope, headers,
    methods,
};

/// What a transport yields.
#[derive(Debug)]
pub enum Inbound {
    /// A message, with the id of the gateway request whose HTTP response stream carried it
    /// (`None` on stdio and on standalone streams).
    Message(Message, Option<Id>),
    /// The connection is gone; the text says why. The last item a transport sends.
    Closed(String),
}

/// Something the upstream sent that is not a response to the gateway, with the downstream
/// request it most likely belongs to.
#[derive(Debug)]
pub enum PeerEvent {
    Notification(Notification, Option<Arc<Origin>>),
    Request(Request, Option<Arc<Origin>>),
}

/// Handles a notification in the dispatcher itself, in arrival order; returns false to pass
/// it on as a [`PeerEvent`] instead. Notifications that belong to a request (progress, logs)
/// must reach the client before that request's response, which the dispatcher delivers at
/// once; any hop through another task could let the response overtake them.
pub type NotificationHook = Arc<dyn Fn(&Notification, Option<&Arc<Origin>>) -> bool + Send + Sync>;

/// Bound on events queued between the dispatcher and the upstream's owner. Notifications
/// beyond it are dropped (and logged) rather than stalling responses behind them.
pub const EVENT_QUEUE: usize = 256;

struct Waiting {
    tx: oneshot::Sender<Result<Payload, ErrorObject>>,
    origin: Option<Arc<Origin>>,
    /// For a `subscriptions/listen` request: takes the filter the upstream acknowledged.
    ack: Option<oneshot::Sender<Value>>,
    /// Whether this is a `subscriptions/listen` request.
    listen: bool,
}

/// What a request to a 2026-07-28 upstream needs beyond its params, all optional.
#[derive(Debug, Default)]
pub struct Extra {
    /// The called tool's `inputSchema` as the upstream listed it (its `x-mcp-header`
    /// annotations become `Mcp-Param-*` headers over HTTP).
    pub tool_schema: Option<Value>,
    /// More HTTP headers for this one request (identity headers); a configured header of
    /// the same name wins.
    pub headers: Vec<(String, String)>,
    /// The log level to ask for when the request's origin names none.
    pub log_level: Option<String>,
}

type PendingMap = HashMap<i64, Waiting>;
type Pending = Arc<Mutex<PendingMap>>;

/// A JSON-RPC client over one upstream connection.
pub struct Peer {
    upstream: Arc<str>,
    outbound: mpsc::Sender<Message>,
    pending: Pending,
    next_id: AtomicI64,
    closed: CancellationToken,
    close_reason: Arc<Mutex<Option<String>>>,
    hook: Option<NotificationHook>,
    /// Set once the upstream is known to speak 2026-07-28 (and during the probe): every
    /// request then carries the gateway's envelope, and over HTTP its own headers.
    stateless: AtomicBool,
    /// The Streamable HTTP link, when that is the transport: per-request headers and
    /// aborting a request's POST go through it.
    http: Option<Arc<HttpLink>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("upstream", &self.upstream)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Peer {
    /// Starts the dispatcher over `inbound`; events go to the returned receiver.
    pub fn start(
        upstream: &str,
        outbound: mpsc::Sender<Message>,
        inbound: mpsc::Receiver<Inbound>,
        hook: Option<NotificationHook>,
        http: Option<Arc<HttpLink>>,
    ) -> (Arc<Peer>, mpsc::Receiver<PeerEvent>) {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let peer = Arc::new(Peer {
            upstream: upstream.into(),
            outbound,
            pending: Arc::default(),
            next_id: AtomicI64::new(1),
            closed: CancellationToken::new(),
            close_reason: Arc::default(),
            hook,
            stateless: AtomicBool::new(false),
            http,
        });
        tokio::spawn(dispatch(peer.clone(), inbound, events_tx));
        (peer, events_rx)
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Switches the connection's era: `true` for 2026-07-28 (envelope on every request, no
    /// session, cancellation by closing the request's stream over HTTP).
    pub fn set_era(&self, era: Era) {
        self.stateless
            .store(era == Era::Stateless, Ordering::Relaxed);
        if let Some(link) = &self.http {
            link.set_era(era);
        }
    }

    pub fn era(&self) -> Era {
        if self.stateless.load(Ordering::Relaxed) {
            Era::Stateless
        } else {
            Era::Handshake
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.close_reason.lock().ok().and_then(|r| r.clone())
    }

    /// Sends a request and waits for its result, at most `timeout`. If the caller stops
    /// waiting (timeout, or the future is dropped because the client went away), the pending
    /// entry is removed and the upstream is told: with `notifications/cancelled`, or over
    /// 2026-07-28 Streamable HTTP by closing the request's stream.
    pub async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ErrorObject> {
        self.request_from(None, method, params, timeout)
            .await
            .map(Payload::into_value)
    }

    /// [`Peer::request`] on behalf of a client request, so that what the upstream sends
    /// while serving it can be routed back to that client.
    pub async fn request_from(
        &self,
        origin: Option<Arc<Origin>>,
        method: &str,
        params: impl Into<Params>,
        timeout: Duration,
    ) -> Result<Payload, ErrorObject> {
        self.request_with(origin, method, params, timeout, Extra::default())
            .await
    }

    /// [`Peer::request_from`] with what a 2026-07-28 upstream needs besides the params.
    pub async fn request_with(
        &self,
        origin: Option<Arc<Origin>>,
        method: &str,
        params: impl Into<Params>,
        timeout: Duration,
        extra: Extra,
    ) -> Result<Payload, ErrorObject> {
        self.send(origin, method, params.into(), timeout, extra, None)
            .await
    }

    /// Holds a `subscriptions/listen` open until the upstream ends it, the timeout passes,
    /// or the caller drops the future (which ends the listen: the POST's stream is closed
    /// over HTTP, `notifications/cancelled` is sent on stdio). `ack` gets the filter the
    /// upstream acknowledged.
    pub async fn listen(
        &self,
        params: Value,
        timeout: Duration,
        ack: oneshot::Sender<Value>,
    ) -> Result<Value, ErrorObject> {
        let method = methods::SUBSCRIPTIONS_LISTEN;
        self.send(
            None,
            method,
            Params::from(params),
            timeout,
            Extra::default(),
            Some(ack),
        )
        .await
        .map(Payload::into_value)
    }

    async fn send(
        &self,
        origin: Option<Arc<Origin>>,
        method: &str,
        mut params: Params,
        timeout: Duration,
        extra: Extra,
        ack: Option<oneshot::Sender<Value>>,
    ) -> Result<Payload, ErrorObject> {
        if self.is_closed() {
            return Err(self.unavailable());
        }
        let stateless = self.era() == Era::Stateless;
        let hop_meta = self.envelope(&mut params.value, origin.as_deref(), &extra, stateless);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = oneshot::channel();
        // Over Streamable HTTP the request is posted from this task when nothing must go out
        // before it (see `HttpLink::exchange`); otherwise it is queued, its headers staged.
        let inline = self.http.as_ref().filter(|link| link.exchange_ready());
        let mut own_headers = Vec::new();
        if stateless && let Some(link) = &self.http {
            let headers = request_headers(method, &params, extra);
            if inline.is_some() {
                own_headers = headers;
            } else {
                link.stage(id, headers);
            }
        }
        let listen = ack.is_some();
        let waiting = Waiting {
            tx,
            origin,
            ack,
            listen,
        };
        self.lock_pending().insert(id, waiting);
        let mut guard = CancelOnDrop {
            peer: self,
            id,
            // The probe and the handshake are never cancelled: a server that has not
            // opened a session may take any other message as a protocol violation.
            armed: method != methods::SERVER_DISCOVER && method != methods::INITIALIZE,
            stateless,
        };
        let mut request = Request::with_params(Id::Num(id), method, params);
        request.hop_meta = hop_meta;
        let msg = Message::Request(request);
        let outcome = if let Some(link) = inline {
            // Boxed: the POST's future is large and would otherwise be nested in every
            // caller's.
            let post = Box::pin(link.exchange(msg, own_headers));
            let exchange = async {
                tokio::select! {
                    answer = post => match answer {
                        Some(response) => {
                            self.lock_pending().remove(&id);
                            Ok(response.outcome)
                        }
                        // Delivered through the dispatcher, or the link closed.
                        None => (&mut rx).await,
                    },
                    delivered = &mut rx => delivered,
                }
            };
            tokio::time::timeout(timeout, exchange).await
        } else {
            if self.outbound.send(msg).await.is_err() {
                guard.armed = false;
                self.lock_pending().remove(&id);
                if let Some(link) = self.http.as_ref().filter(|_| stateless) {
                    link.abandon(id);
                }
                return Err(self.unavailable());
            }
            tokio::time::timeout(timeout, &mut rx).await
        };
        match outcome {
            Ok(Ok(result)) => {
                guard.armed = false;
                result
            }
            // The dispatcher dropped the sender: the connection closed under us.
            Ok(Err(_)) => {
                guard.armed = false;
                Err(self.unavailable())
            }
            Err(_) => {
                if !guard.armed {
                    self.lock_pending().remove(&id);
                    if let Some(link) = self.http.as_ref().filter(|_| stateless) {
                        link.abandon(id);
                    }
                }
                Err(ErrorObject::upstream_timeout(
                    &self.upstream,
                    method,
                    timeout,
                ))
            }
        }
    }

    /// The per-request `_meta` envelope: the gateway's own for a stateless upstream (what it
    /// can relay for the client the request serves, or its own capabilities for requests of
    /// its own), and for a handshake-era one only the client's envelope keys removed, since they
    /// belong to the client's hop and would make a dual-era server read the request as stateless.
    /// Readies `params` for this upstream's hop; for a 2026-07-28 upstream, returns the
    /// gateway's envelope to write into `_meta` (see [`Request::hop_meta`]).
    fn envelope(
        &self,
        params: &mut Option<Value>,
        origin: Option<&Origin>,
        extra: &Extra,
        stateless: bool,
    ) -> Option<Box<str>> {
        if !stateless {
            envelope::strip_hop_keys(params);
            return None;
        }
        let capabilities = origin.map_or_else(super::connect::gateway_capabilities, |o| {
            super::connect::relayable(&o.capabilities)
        });
        let level = origin
            .and_then(|o| o.log_level.as_deref())
            .or(extra.log_level.as_deref());
        Some(envelope::for_stateless_hop(params, &capabilities, level))
    }

    /// Sends a notification; fails only if the connection is gone.
    pub async fn notify(&self, method: &str, params: Option<Value>) -> Result<(), ErrorObject> {
        let msg = Message::Notification(Notification::new(method, params));
        self.send_ordered(msg).await.map_err(|_| self.unavailable())
    }

    /// Queues a notification or response; over HTTP it is counted, so that no request
    /// overtakes it (see `HttpLink::exchange`).
    async fn send_ordered(&self, msg: Message) -> Result<(), ()> {
        if let Some(link) = &self.http {
            link.enter_ordered();
        }
        let sent = self.outbound.send(msg).await.map_err(|_| ());
        if sent.is_err()
            && let Some(link) = &self.http
        {
            link.leave_ordered();
        }
        sent
    }

    /// Answers a request the upstream sent us.
    pub async fn respond(&self, id: Id, outcome: Result<Value, ErrorObject>) {
        let msg = Message::Response(Response {
            id: Some(id),
            outcome: outcome.map(Payload::from),
        });
        // A closed connection has nobody left to answer; nothing to do.
        let _ = self.send_ordered(msg).await;
    }

    /// The client request that a message from the upstream belongs to. On HTTP the
    /// transport knows which request's stream carried it (`related`). On stdio nothing says
    /// so: if every request in flight serves one client, it is that client's latest request;
    /// if several clients have requests in flight, the most recent one is the best guess
    /// (documented: use `session: per_session` where that ambiguity matters).
    fn origin_of(&self, related: Option<&Id>) -> Option<Arc<Origin>> {
        let pending = self.lock_pending();
        if let Some(Id::Num(id)) = related {
            return pending.get(id).and_then(|w| w.origin.clone());
        }
        pending
            .iter()
            .filter_map(|(id, w)| Some((*id, w.origin.clone()?)))
            .max_by_key(|(id, _)| *id)
            .map(|(_, o)| o)
    }

    fn unavailable(&self) -> ErrorObject {
        let reason = self
            .close_reason()
            .unwrap_or_else(|| "connection closed".into());
        ErrorObject::upstream_unavailable(&self.upstream, reason)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        // A poisoned map only means another task panicked mid-insert; the map is still sound.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The HTTP headers of one request to a 2026-07-28 Streamable HTTP upstream (SEP-2243):
/// the revision, `Mcp-Method`, `Mcp-Name` and `Mcp-Param-*` as the upstream's own names and
/// schema give them, then the extra ones.
fn request_headers(method: &str, params: &Params, extra: Extra) -> Vec<headers::Header> {
    // The version, Mcp-Method and Mcp-Name are the usual three.
    let mut all = Vec::with_capacity(3 + extra.headers.len());
    all.push((
        Cow::Borrowed(super::http::VERSION_HEADER),
        Cow::Borrowed(Era::Stateless.latest()),
    ));
    all.extend(headers::for_request(
        method,
        params,
        extra.tool_schema.as_ref(),
    ));
    all.extend(
        extra
            .headers
            .into_iter()
            .map(|(name, value)| (Cow::Owned(name), Cow::Owned(value))),
    );
    all
}

/// Removes a request that is no longer awaited and tells the upstream to stop working on it:
/// over 2026-07-28 Streamable HTTP by closing the request's stream (the spec's only way),
/// otherwise with `notifications/cancelled`.
struct CancelOnDrop<'a> {
    peer: &'a Peer,
    id: i64,
    armed: bool,
    stateless: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let was_pending = self.peer.lock_pending().remove(&self.id).is_some();
        if let Some(link) = self.peer.http.as_ref().filter(|_| self.stateless) {
            link.abandon(self.id);
            return;
        }
        if was_pending && !self.peer.is_closed() {
            let params =
                json!({ "requestId": self.id, "reason": "request abandoned by the gateway" });
            let msg = Message::Notification(Notification::new(methods::CANCELLED, Some(params)));
            // Best effort: a full queue means the upstream is swamped; it will answer late
            // and the response is then ignored as unknown.
            if let Some(link) = &self.peer.http {
                link.enter_ordered();
            }
            if self.peer.outbound.try_send(msg).is_err()
                && let Some(link) = &self.peer.http
            {
                link.leave_ordered();
            }
        }
    }
}

async fn dispatch(
    peer: Arc<Peer>,
    mut inbound: mpsc::Receiver<Inbound>,
    events: mpsc::Sender<PeerEvent>,
) {
    let mut reason = String::from("connection closed");
    while let Some(item) = inbound.recv().await {
        match item {
            Inbound::Closed(why) => {
                reason = why;
                break;
            }
            Inbound::Message(Message::Response(resp), _) => deliver(&peer, resp),
            Inbound::Message(Message::Notification(mut n), related) => {
                // A notification on a `subscriptions/listen` stream belongs to no client
                // request, whatever stream or request carried it.
                let origin = match take_subscription_id(&mut n) {
                    Some(listen) => {
                        if peer.listen_event(&n, listen) {
                            continue;
                        }
                        None
                    }
                    None if peer.ends_listen(&n) => continue,
                    None => peer.origin_of(related.as_ref()),
                };
                if peer
                    .hook
                    .as_ref()
                    .is_some_and(|hook| hook(&n, origin.as_ref()))
                {
                    continue;
                }
                if let Err(e) = events.try_send(PeerEvent::Notification(n, origin)) {
                    tracing::warn!(upstream = %peer.upstream, error = %e, "Dropped upstream notification");
                }
            }
            Inbound::Message(Message::Request(r), related) => {
                let id = r.id.clone();
                let origin = peer.origin_of(related.as_ref());
                if events.try_send(PeerEvent::Request(r, origin)).is_err() {
                    let busy =
                        ErrorObject::new(crate::protocol::codes::GATEWAY_BUSY, "gateway busy");
                    peer.respond(id, Err(busy)).await;
                }
            }
        }
    }
    if let Ok(mut slot) = peer.close_reason.lock() {
        *slot = Some(reason.clone());
    }
    peer.closed.cancel();
    let drained: Vec<_> = peer.lock_pending().drain().collect();
    if !drained.is_empty() {
        tracing::warn!(upstream = %peer.upstream, pending = drained.len(), reason = %reason, "Upstream connection closed with requests in flight");
    }
    for (_, waiting) in drained {
        let _ = waiting.tx.send(Err(ErrorObject::upstream_unavailable(
            &peer.upstream,
            &reason,
        )));
    }
}

fn deliver(peer: &Peer, resp: Response) {
    let Some(Id::Num(id)) = resp.id else {
        tracing::debug!(upstream = %peer.upstream, id = ?resp.id, "Ignored response with a foreign id");
        return;
    };
    match peer.lock_pending().remove(&id) {
        Some(waiting) => {
            let _ = waiting.tx.send(resp.outcome);
        }
        None => tracing::debug!(upstream = %peer.upstream, id, "Ignored late or unknown response"),
    }
}

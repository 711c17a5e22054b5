//! What a client message does inside a session, whatever transport carried it: requests run
//! through the pipeline (cancellable by the client), notifications and answers to
//! server→client requests update gateway state.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::pipeline::Pipeline;
use crate::pipeline::{Caller, Listed, RequestContext};
use crate::protocol::{
    Era, ErrorObject, Id, Message, Notification, Payload, Request, Response, codes, methods,
};
use crate::relay::{self, Relay};
use crate::session::Session;
use crate::session::events::Text;
use crate::upstream::Upstreams;

/// Related messages queued between a request and its stream.
const RELATED_QUEUE: usize = 64;

/// Runs one client request; notifications that belong to it go to `sink`. A
/// `notifications/cancelled` naming it stops it (and its upstream request) and answers with
/// error -32013.
pub async fn request(
    pipeline: &Pipeline,
    session: &Arc<Session>,
    req: Request,
    sink: Option<mpsc::Sender<Message>>,
    caller: Caller,
) -> Response {
    run_in_session(pipeline, session, req, sink, caller, None, false)
        .await
        .response
}

/// [`request`], firing `admitted` once the request has passed the pipeline's admission
/// stages (see [`RequestContext::admitted`]). A listing comes back with its page apart
/// (see [`Answered`]).
pub async fn request_admitted(
    pipeline: &Pipeline,
    session: &Arc<Session>,
    req: Request,
    sink: Option<mpsc::Sender<Message>>,
    caller: Caller,
    admitted: Option<oneshot::Sender<()>>,
) -> Answered {
    run_in_session(pipeline, session, req, sink, caller, admitted, true).await
}

async fn run_in_session(
    pipeline: &Pipeline,
    session: &Arc<Session>,
    req: Request,
    sink: Option<mpsc::Sender<Message>>,
    caller: Caller,
    admitted: Option<oneshot::Sender<()>>,
    shared_listings: bool,
) -> Answered {
    let inflight = session.track(req.id.clone());
    let mut ctx = RequestContext::new(Some(session.clone()), sink, caller);
    ctx.admitted = admitted;
    ctx.cancel = Some(inflight.token.clone());
    ctx.shared_listings = shared_listings;
    // The router answers a cancellation itself, inside the chain, so the stages trace, count
    // and audit it; this arm only covers a request still waiting in an admission stage.
    let outcome = tokio::select! {
        biased;
        outcome = pipeline.handle(&mut ctx, &req) => outcome,
        _ = inflight.token.cancelled() => {
            tracing::debug!(method = %req.method, id = %req.id, "Cancelled by the client");
            Err(ErrorObject::cancelled())
        }
    };
    // Results from 2026-07-28 upstreams carry fields strict handshake clients reject.
    let outcome = outcome.map(|mut result| {
        result.shape_for_handshake();
        result
    });
    Answered::new(
        Response {
            id: Some(req.id),
            outcome,
        },
        ctx,
    )
}

/// A response to a client request, and the listing page whose items belong first in its
/// result when the router answered from a shared page (a face that writes it asked for it
/// with [`RequestContext::shared_listings`]). A repeated listing then costs a copy of the
/// page's bytes, not a clone and a serialisation of every item.
#[derive(Debug)]
pub struct Answered {
    pub response: Response,
    pub listed: Option<Listed>,
}

impl From<Response> for Answered {
    fn from(response: Response) -> Self {
        Answered {
            response,
            listed: None,
        }
    }
}

/// The members of a response's result, when it is an object (a listing the router left
/// for the face to write is one).
fn result_object(response: &Response) -> Option<&Map<String, Value>> {
    response.outcome.as_ref().ok()?.as_object()
}

impl Answered {
    /// The response, and the page the router left in `ctx` if the result is still the
    /// router's listing.
    fn new(response: Response, ctx: RequestContext) -> Self {
        let listed = ctx
            .listed
            .into_inner()
            .filter(|_| response.outcome.as_ref().is_ok_and(Payload::is_object));
        Answered { response, listed }
    }

    /// The response as JSON text (what [`Message::to_json`] writes for it, items included).
    pub fn into_json(self) -> String {
        if let Some(listed) = &self.listed
            && let Some(rest) = result_object(&self.response)
        {
            let (head, tail) = around(self.response.id.as_ref(), listed, rest);
            let items = &listed.page.items;
            let mut out = String::with_capacity(head.len() + items.len() + tail.len());
            out.push_str(&head);
            out.push_str(items);
            out.push_str(&tail);
            return out;
        }
        Message::Response(self.response).to_json()
    }

    /// [`Answered::into_json`] for an event log: a listing's page is shared with the
    /// catalog, not copied, so an answer kept for resumption holds only what is its own.
    pub fn into_text(self) -> Text {
        if let Some(listed) = &self.listed
            && let Some(rest) = result_object(&self.response)
        {
            let (head, tail) = around(self.response.id.as_ref(), listed, rest);
            return Text::around(head, listed.page.clone(), tail);
        }
        let mut json = Message::Response(self.response).to_json();
        json.shrink_to_fit();
        Text::Whole(Arc::new(json))
    }

    /// The response with the page's items in its result, for a face that passes messages on.
    pub fn into_response(self) -> Response {
        let Answered {
            mut response,
            listed,
        } = self;
        if let Some(listed) = listed
            && let Ok(result) = &mut response.outcome
            && let Value::Object(rest) = &mut **result
        {
            let items = serde_json::from_str(&listed.page.items)
                .expect("a shared page holds the JSON the gateway wrote");
            let mut result = Map::with_capacity(rest.len() + 1);
            result.insert(listed.field.into(), items);
            result.append(rest);
            *rest = result;
        }
        response
    }
}

/// What goes before and after the items of a listing answer:
/// `{"jsonrpc":"2.0","id":…,"result":{"<field>":` and `,<rest>}}`.
fn around(id: Option<&Id>, listed: &Listed, rest: &Map<String, Value>) -> (String, String) {
    let mut head = String::from(r#"{"jsonrpc":"2.0","id":"#);
    head.push_str(&text(&id));
    head.push_str(r#","result":{"#);
    head.push_str(&text(&listed.field));
    head.push(':');
    let mut tail = String::new();
    for (key, value) in rest {
        tail.push(',');
        tail.push_str(&text(key));
        tail.push(':');
        tail.push_str(&text(value));
    }
    tail.push_str("}}");
    (head, tail)
}

/// Compact JSON text of an id, key or value (serialising them cannot fail).
fn text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// One request of a 2026-07-28 client: no session; what it declared travels with it.
pub struct Stateless {
    pub envelope: crate::protocol::envelope::Envelope,
    /// The request's own stream, where the transport has one.
    pub sink: Option<mpsc::Sender<Message>>,
    pub caller: Caller,
    /// Fired once the pipeline admits the request (see [`RequestContext::admitted`]).
    pub admitted: Option<oneshot::Sender<()>>,
    /// Cancels the request (stdio: the client sent `notifications/cancelled`). `None` where
    /// the transport cancels by dropping the request (HTTP: the client went away).
    pub cancel: Option<CancellationToken>,
}

impl Stateless {
    /// Runs the request through the pipeline and shapes the answer for a stateless client:
    /// `resultType` and the gateway's `serverInfo` on results, error codes of this era.
    pub async fn request(self, pipeline: &Pipeline, req: Request) -> Response {
        self.run(pipeline, req, false).await.response
    }

    /// [`Stateless::request`], a listing with its page apart (see [`Answered`]).
    pub async fn answer(self, pipeline: &Pipeline, req: Request) -> Answered {
        self.run(pipeline, req, true).await
    }

    async fn run(self, pipeline: &Pipeline, req: Request, shared_listings: bool) -> Answered {
        let mut ctx = RequestContext::new(None, self.sink, self.caller);
        ctx.envelope = Some(Arc::new(self.envelope));
        ctx.admitted = self.admitted;
        ctx.cancel = self.cancel.clone();
        ctx.shared_listings = shared_listings;
        let outcome = match &self.cancel {
            Some(cancel) => tokio::select! {
                biased;
                outcome = pipeline.handle(&mut ctx, &req) => outcome,
                _ = crate::sync::cancelled(cancel) => Err(ErrorObject::cancelled()),
            },
            None => pipeline.handle(&mut ctx, &req).await,
        };
        let outcome = match outcome {
            Ok(mut result) => {
                result.shape_for_stateless();
                Ok(result)
            }
            Err(e) => Err(stateless_error(e)),
        };
        Answered::new(
            Response {
                id: Some(req.id),
                outcome,
            },
            ctx,
        )
    }
}

/// An error as a 2026-07-28 client must see it: resource-not-found is -32602 in this era.
pub fn stateless_error(mut e: ErrorObject) -> ErrorObject {
    if e.code == codes::RESOURCE_NOT_FOUND {
        e.code = codes::INVALID_PARAMS;
    }
    e
}

/// Runs one client request whose related messages and final response all travel on one
/// ordered stream (`push`): HTTP+SSE, where everything shares the session's stream.
/// Related messages are pushed as they come, and the response after every one of them.
pub async fn request_streamed(
    pipeline: &Pipeline,
    session: &Arc<Session>,
    req: Request,
    caller: Caller,
    push: impl Fn(Message),
) {
    let (tx, mut rx) = mpsc::channel(RELATED_QUEUE);
    let work = request(pipeline, session, req, Some(tx), caller);
    tokio::pin!(work);
    let response = loop {
        tokio::select! {
            biased;
            Some(msg) = rx.recv() => push(msg),
            response = &mut work => break response,
        }
    };
    while let Ok(msg) = rx.try_recv() {
        push(msg);
    }
    push(Message::Response(response));
}

/// A client notification.
pub async fn notification(upstreams: &Upstreams, session: &Session, n: Notification) {
    match n.method.as_str() {
        methods::INITIALIZED => {
            session.mark_initialized();
            if let Some(shared) = session.shared()
                && let Ok(json) = session.record().encode()
                && let Err(e) = shared.save(&session.id, &json).await
            {
                tracing::warn!(error = %e, "Could not share that a session is initialized");
            }
        }
        methods::CANCELLED => {
            let id = n
                .params
                .as_ref()
                .and_then(|p| p.get("requestId"))
                .and_then(Id::from_value);
            if let Some(id) = id
                && !session.cancel(&id)
            {
                match session.shared() {
                    // The request may run on another replica.
                    Some(shared) => {
                        let cancel = crate::session::shared::Broadcast::Cancel {
                            s: session.id.clone(),
                            id: serde_json::to_value(&id).unwrap_or_default(),
                        };
                        if let Err(e) = shared.announce(&cancel).await {
                            tracing::warn!(error = %e, "Could not pass a cancellation on to the other replicas");
                        }
                    }
                    None => {
                        tracing::debug!(id = %id, "Cancellation for a request not in flight (finished already?)")
                    }
                }
            }
        }
        methods::ROOTS_LIST_CHANGED => {
            for upstream in upstreams.iter() {
                upstream.notify(methods::ROOTS_LIST_CHANGED, None).await;
            }
            // The replicas holding a copy of the session have upstream sessions of their own.
            if let Some(shared) = session.shared() {
                let changed = crate::session::shared::Broadcast::RootsChanged {
                    s: session.id.clone(),
                    from: shared.replica,
                };
                if let Err(e) = shared.announce(&changed).await {
                    tracing::warn!(error = %e, "Could not pass roots/list_changed on to the other replicas");
                }
            }
        }
        other => tracing::debug!(method = %other, "Ignored client notification"),
    }
}

/// A client's answer to a request the gateway sent it.
pub fn response(relay: &Relay, session: &Session, r: Response) {
    let id = r.id.clone();
    if !relay::client_requests::answered(relay, session, r) {
        tracing::debug!(id = ?id, "Ignored an answer to no pending request");
    }
}

/// A session ended (DELETE, expiry): drop its state everywhere.
pub async fn close(relay: &Relay, session: &Session) {
    session.close_stream();
    relay::session_closed(relay, &session.id).await;
}

/// A 2025-03-26 JSON-RPC batch: its requests run concurrently; the answer is the array of
/// their responses, or nothing if it held only notifications and responses. Related
/// messages (progress) go to `sink` where the transport has a stream for them.
pub async fn batch(
    gateway: &Gateway,
    session: &Arc<Session>,
    items: Vec<Value>,
    sink: Option<mpsc::Sender<Message>>,
    caller: &Caller,
) -> Result<Vec<Response>, ErrorObject> {
    if items.is_empty() {
        return Err(ErrorObject::invalid_request("empty batch"));
    }
    let pipeline = gateway.pipeline();
    let mut requests = Vec::new();
    let mut answers = Vec::new();
    for item in items {
        match Message::from_value(item) {
            Ok(Message::Request(r)) if r.method == methods::INITIALIZE => {
                answers.push(Response::err(
                    Some(r.id),
                    ErrorObject::invalid_request("initialize must not be part of a batch"),
                ));
            }
            Ok(Message::Request(r)) => {
                requests.push(request(&pipeline, session, r, sink.clone(), caller.clone()))
            }
            Ok(Message::Notification(n)) => notification(&gateway.upstreams, session, n).await,
            Ok(Message::Response(r)) => response(&gateway.relay, session, r),
            Err(e) => answers.push(Response::err(None, e)),
        }
    }
    answers.extend(futures::future::join_all(requests).await);
    Ok(answers)
}

/// `initialize`: the pipeline answers it, and only a successful answer creates and registers
/// the session (`make` builds it from the negotiated version, client info and capabilities).
pub async fn initialize(
    gateway: &Gateway,
    req: &Request,
    caller: Caller,
    make: impl FnOnce(&str, Value, Value) -> Session,
) -> Result<(Value, Arc<Session>), ErrorObject> {
    if gateway.draining() {
        return Err(shutting_down());
    }
    let principal = caller.principal.clone();
    let source = caller.source;
    let mut ctx = RequestContext::new(None, None, caller);
    let result = gateway.pipeline().handle(&mut ctx, req).await?.into_value();
    let negotiated = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(Era::Handshake.latest());
    let info = req.param("clientInfo").cloned().unwrap_or(Value::Null);
    let caps = req
        .param("capabilities")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let mut session = make(negotiated, info, caps);
    session.principal = principal;
    session.source = source;
    let session = admit(gateway, Arc::new(session)).await?;
    if let Some(shared) = session.shared() {
        let saved = match session.record().encode() {
            Ok(json) => shared.save(&session.id, &json).await.map_err(|e| {
                tracing::warn!(error = %e, "Could not share a new session; refused it");
                relay::bus::unavailable(&e)
            }),
            Err(len) => Err(relay::bus::too_large(len)),
        };
        if let Err(e) = saved {
            gateway.sessions.remove(&session.id);
            return Err(e);
        }
    }
    tracing::info!(session = %&session.id[..8], version = %session.protocol_version, client = %session.client_info, "Client session opened");
    Ok((result, session))
}

/// Longest `Mcp-Session-Id` looked up (the gateway's own are 43 characters).
const MAX_SESSION_ID: usize = 128;

/// The session `id`: this replica's copy, or, when replicas share sessions, a copy made
/// here from the shared record (its subscriptions and log level replayed upstream).
/// `Ok(None)` when no live session has that id; an error when the shared store cannot be
/// reached and this replica holds no copy.
pub async fn find_session(
    gateway: &Gateway,
    id: &str,
    caller: &crate::session::Principal,
) -> Result<Option<Arc<Session>>, ErrorObject> {
    // Gateway ids are 43 characters: anything much longer names no session, and is not
    // worth a Redis lookup.
    if id.len() > MAX_SESSION_ID {
        return Ok(None);
    }
    let local = gateway.sessions.get(id);
    let Some(shared) = gateway.sessions.shared().cloned() else {
        return Ok(local);
    };
    if let Some(session) = local {
        if session.shared().is_none() {
            return Ok(Some(session));
        }
        return match shared.renew(id).await {
            Ok(true) => Ok(Some(session)),
            // Ended on another replica (or expired there): gone here too.
            Ok(false) => {
                gateway.sessions.remove(id);
                shared.forget(id);
                relay::session_closed(&gateway.relay, id).await;
                Ok(None)
            }
            // Redis unreachable: this replica's copy keeps serving.
            Err(e) => {
                tracing::debug!(error = %e, "Could not renew a shared session");
                Ok(Some(session))
            }
        };
    }
    let record = match shared.load(id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "Could not read a shared session");
            return Err(relay::bus::unavailable(&e));
        }
    };
    // Another principal's session is not copied here (nor its subscriptions replayed): the
    // caller gets the 404 it would get on the replica that opened it.
    if record.subject != caller.subject || record.method != caller.method.as_str() {
        return Ok(None);
    }
    if gateway.draining() {
        return Err(shutting_down());
    }
    // The copy starts with no log level and no subscriptions: `apply` replays them here.
    let copy = Session::restore(id.to_owned(), &record, &shared);
    let session = match gateway.sessions.peek(id) {
        // Another request made the copy meanwhile.
        Some(session) => session,
        None => admit(gateway, Arc::new(copy)).await?,
    };
    tracing::debug!(session = %&id[..8.min(id.len())], "Serving a session opened on another replica");
    relay::bus::apply(&gateway.relay, &session, &record).await;
    Ok(Some(session))
}

/// Registers a new session under the session limits: idle sessions evicted to make room are
/// closed everywhere; a refusal is -32012 (HTTP 503) naming the limit.
async fn admit(gateway: &Gateway, session: Arc<Session>) -> Result<Arc<Session>, ErrorObject> {
    let limits = &gateway.config().sessions;
    match gateway.sessions.insert(session) {
        Ok(admitted) => {
            for (gone, limit) in admitted.evicted {
                gateway.metrics.session_evicted(limit);
                tracing::info!(session = %&gone.id[..8.min(gone.id.len())], limit, used = gone.is_used(), "Closed the least recently used idle session to make room for a new one");
                relay::session_closed(&gateway.relay, &gone.id).await;
            }
            Ok(admitted.session)
        }
        Err(limit) => {
            gateway.metrics.session_refused(limit);
            let (what, cap) = match limit {
                "principal" => ("sessions for this principal", limits.per_principal),
                "source" => ("sessions from this address", limits.per_source),
                _ => ("sessions", limits.max),
            };
            tracing::warn!(
                limit,
                cap,
                "Refused a new session: every session under the limit is busy"
            );
            Err(ErrorObject::new(
                codes::GATEWAY_BUSY,
                format!("too many {what} (at most {cap}, all busy); close one or retry later"),
            ))
        }
    }
}

/// The refusal of a new session while the gateway drains (HTTP 503: try another replica).
pub fn shutting_down() -> ErrorObject {
    ErrorObject::new(
        codes::GATEWAY_BUSY,
        "the gateway is shutting down and opens no new sessions; connect again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::merge::SharedPage;
    use serde_json::json;

    fn answered(id: Id, result: Value, items: &str) -> Answered {
        Answered {
            response: Response::ok(id, result),
            listed: Some(Listed {
                field: "tools",
                page: Arc::new(SharedPage {
                    items: items.into(),
                    count: 2,
                    next: None,
                }),
            }),
        }
    }

    #[test]
    fn a_spliced_listing_is_the_message_it_stands_for() {
        let items = r#"[{"name":"a__x","n":1.5,"s":"é\n\"q\""},{"name":"b"}]"#;
        for (id, rest) in [
            (Id::Num(7), json!({})),
            (
                Id::Str("r-1".into()),
                json!({ "nextCursor": "abc", "ttlMs": 0, "resultType": "complete",
                        "_meta": { "io.modelcontextprotocol/serverInfo": { "name": "m" } } }),
            ),
        ] {
            let json = answered(id.clone(), rest.clone(), items).into_json();
            let text = answered(id.clone(), rest.clone(), items).into_text();
            let message = Message::Response(answered(id, rest, items).into_response());
            assert_eq!(json, message.to_json());
            assert!(
                matches!(text, Text::Around(_)),
                "the page is shared, not copied"
            );
            assert_eq!(
                (text.text(), text.len()),
                (json.as_str().into(), json.len())
            );
            let back: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back["result"]["tools"][0]["name"], "a__x");
        }
    }

    #[test]
    fn errors_and_plain_results_are_written_as_they_are() {
        let error = Response::err(Some(Id::Num(1)), ErrorObject::invalid_params("stale"));
        let expected = Message::Response(error.clone()).to_json();
        assert_eq!(Answered::from(error).into_json(), expected);
        let mut with_page = answered(Id::Num(2), json!({}), "[]");
        with_page.response.outcome = Err(ErrorObject::cancelled());
        let expected = Message::Response(with_page.response.clone()).to_json();
        assert_eq!(with_page.into_json(), expected);
    }
}

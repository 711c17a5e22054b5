//! Streamable HTTP for clients: one endpoint (default `/mcp`) taking POST (client messages),
//! GET (the server→client SSE stream) and DELETE (end of session), plus `/healthz` and
//! `/readyz`.
//!
//! Status codes follow the transport spec and the reference SDKs: 202 for accepted
//! notifications and responses, 400 for malformed messages or a missing session id, 404 for
//! an unknown session, 405 for other methods, 406 for an `Accept` that rules out what the
//! gateway sends, 413 over the body limit, 415 for a body that is not JSON, 409 for a second
//! GET stream on one session, 503 when the session table is full.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;

use super::answer::{answer, sse_json, sse_response};
use super::exchange;
use super::web::{
    AppState, Peer, SESSION_HEADER, VERSION_HEADER, accepts, accepts_each, caller, is_json, plain,
    read_body, refused_or, rpc_error, rpc_json,
};
use crate::pipeline::Caller;
use crate::protocol::jsonrpc::ParseError;
use crate::protocol::{Era, ErrorObject, Message, Request, Response as RpcResponse, methods};
use crate::session::Session;
use crate::session::events::parse_event_id;
use crate::session::shared::Shared;

pub(crate) async fn method_not_allowed() -> Response {
    let mut resp = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: use POST, GET or DELETE",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    resp
}

/// `POST` on the MCP path, as a route of the router (which finds the peer in the request's
/// extensions). The server's own path comes in through [`post_message_from`].
pub(crate) async fn post_message(
    State(state): State<AppState>,
    request: axum::http::Request<Body>,
) -> Response {
    let peer = request.extensions().get::<Peer>().cloned();
    post_message_from(state, request, peer).await
}

/// One client message posted on `peer`'s connection. Owns what it is given, so the server
/// can box this future itself rather than a future around it.
pub(crate) async fn post_message_from(
    state: AppState,
    request: axum::http::Request<Body>,
    peer: Option<Peer>,
) -> Response {
    let state = &state;
    let peer = peer.as_ref();
    // Taken apart rather than extracted piece by piece: the `HeaderMap` extractor copies the
    // headers.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    if let Err((status, msg)) = state.guard.check(&headers) {
        return rpc_error(status, ErrorObject::invalid_request(msg));
    }
    if !is_json(&headers) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    if let Some(charset) = super::web::foreign_charset(&headers) {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorObject::invalid_request(format!(
                "Content-Type charset must be utf-8, not {charset}"
            )),
        );
    }
    if !accepts_each(&headers, ["application/json", "text/event-stream"]) {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must list application/json and text/event-stream",
        );
    }
    // Credentials before the body: an unauthenticated client gets 401 without the gateway
    // reading (or parsing) what it sent.
    let caller = match caller(state, &headers, peer, "http").await {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let bytes = match read_body(state, body).await {
        Ok(bytes) => bytes,
        Err(resp) => return *resp,
    };
    // A POST its header puts in the stateless era has the client's envelope read out of
    // `_meta` in the parse, instead of built into the params and taken out again.
    let (parsed, taken) = if super::stateless::header_says_stateless(&headers) {
        let (parsed, taken) = Message::parse_stateless(&bytes);
        (parsed, Some(taken))
    } else {
        (Message::parse(&bytes), None)
    };
    if super::stateless::is_stateless_post(&headers, &parsed) {
        return super::stateless::post(state, &headers, parsed, taken, caller).await;
    }
    // Each path's future is boxed on its own: inline, the largest (7 KB) would size every
    // request's future, which the server copies twice when it boxes it.
    match parsed {
        Ok(Message::Request(req)) if req.method == methods::INITIALIZE => {
            Box::pin(initialize(state, &headers, req, caller)).await
        }
        Ok(message) => Box::pin(in_session(state, &headers, message, caller)).await,
        Err(ParseError::Invalid(e)) => rpc_error(StatusCode::BAD_REQUEST, e),
        Err(ParseError::Batch(items)) => Box::pin(batch(state, &headers, items, caller)).await,
    }
}

/// `initialize` opens a session: the pipeline answers it, and only a successful answer
/// registers the session and hands its id to the client.
async fn initialize(
    state: &AppState,
    headers: &HeaderMap,
    req: Request,
    caller: Caller,
) -> Response {
    if headers.contains_key(SESSION_HEADER) {
        let e = ErrorObject::invalid_request(
            "initialize must not carry Mcp-Session-Id: the session is already initialized",
        );
        return rpc_error(StatusCode::BAD_REQUEST, e);
    }
    let base = state
        .gateway
        .sessions
        .shared()
        .map_or(0, |shared| shared.stream_base());
    let make = |version: &str, info, caps| Session::new(version, info, caps).shareable(base);
    match exchange::initialize(&state.gateway, &req, caller, make).await {
        Ok((result, session)) => {
            let mut resp = rpc_json(
                StatusCode::OK,
                &Message::Response(RpcResponse::ok(req.id, result)),
            );
            if let Ok(v) = HeaderValue::from_str(&session.id) {
                resp.headers_mut().insert(SESSION_HEADER, v);
            }
            resp
        }
        Err(e) if e.code == crate::protocol::codes::GATEWAY_BUSY => {
            rpc_error(StatusCode::SERVICE_UNAVAILABLE, e)
        }
        Err(e) => refused_or(RpcResponse::err(Some(req.id), e)),
    }
}

async fn in_session(
    state: &AppState,
    headers: &HeaderMap,
    message: Message,
    caller: Caller,
) -> Response {
    let session = match session_with_version(state, headers, &caller).await {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    match message {
        Message::Request(req) => answer(state.gateway.clone(), session, req, caller).await,
        Message::Notification(n) => {
            exchange::notification(&state.gateway.upstreams, &session, n).await;
            StatusCode::ACCEPTED.into_response()
        }
        Message::Response(r) => {
            exchange::response(&state.gateway.relay, &session, r);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// JSON-RPC batches exist only in 2025-03-26 (MUST accept); later revisions removed them.
async fn batch(
    state: &AppState,
    headers: &HeaderMap,
    items: Vec<Value>,
    caller: Caller,
) -> Response {
    let session = match session_with_version(state, headers, &caller).await {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if session.protocol_version != "2025-03-26" {
        let msg = format!(
            "JSON-RPC batches are not part of protocol revision {}; only 2025-03-26 has them",
            session.protocol_version
        );
        return rpc_error(StatusCode::BAD_REQUEST, ErrorObject::invalid_request(msg));
    }
    match exchange::batch(&state.gateway, &session, items, None, &caller).await {
        Err(e) => rpc_error(StatusCode::BAD_REQUEST, e),
        Ok(responses) if responses.is_empty() => StatusCode::ACCEPTED.into_response(),
        Ok(responses) => {
            let array: Vec<Value> = responses
                .into_iter()
                .map(|r| Message::Response(r).to_value())
                .collect();
            let mut resp = (StatusCode::OK, Value::Array(array).to_string()).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
    }
}

async fn session_with_version(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Arc<Session>, Box<Response>> {
    let session = session_of(state, headers, caller).await?;
    check_version_header(headers, &session)?;
    Ok(session)
}

/// GET: the session's standalone stream, or, with `Last-Event-ID`, the rest of any of the
/// session's streams after that event (resumption after a dropped connection).
pub(crate) async fn get_stream(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, msg)) = state.guard.check(&headers) {
        return rpc_error(status, ErrorObject::invalid_request(msg));
    }
    if is_stateless_version(&headers) {
        return stateless_only_post();
    }
    if !accepts(&headers, "text/event-stream") {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must list text/event-stream",
        );
    }
    let caller = match caller(&state, &headers, peer.as_deref(), "http").await {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let session = match session_with_version(&state, &headers, &caller).await {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    let mut resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_event_id);
    let shutdown = state.gateway.shutdown.clone().cancelled_owned();
    if let Some((stream, seq)) = resume
        && let Some(shared) = session.shared()
        && let owner = Shared::replica_of(stream)
        && owner != 0
        && owner != shared.replica
    {
        if stream & 0xffff_ffff != 0 {
            return super::resume::elsewhere(shared, &session.id, stream, seq, owner, shutdown)
                .await;
        }
        // The GET stream another replica held: it moves here, starting with what this
        // replica has for the client (the other replica's buffer stays there).
        resume = None;
    }
    match resume {
        Some((stream, seq)) if stream != session.get_stream_number() => {
            let Some(log) = session.stream(stream) else {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "Last-Event-ID names a stream this session no longer keeps",
                );
            };
            let events = log
                .follow(seq)
                .map(|(id, json)| sse_json(&json.text()).map(|e| e.id(id)));
            sse_response(events.take_until(shutdown))
        }
        _ => {
            let Some(reader) = session.open_stream() else {
                return plain(
                    StatusCode::CONFLICT,
                    "this session already has an open GET stream",
                );
            };
            let reader = (reader, super::resume::hold(&session).await);
            let (log, delivered_up_to, delivered) = session.get_stream();
            let start = resume.map_or(delivered_up_to, |(_, seq)| seq);
            let events = log.follow(start).map(move |(id, json)| {
                // The reader guard lives as long as the stream: dropping it frees the slot.
                let _hold = &reader;
                if let Some((_, seq)) = parse_event_id(&id) {
                    delivered.fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
                }
                sse_json(&json.text()).map(|e| e.id(id))
            });
            sse_response(events.take_until(shutdown))
        }
    }
}

pub(crate) async fn delete_session(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, msg)) = state.guard.check(&headers) {
        return rpc_error(status, ErrorObject::invalid_request(msg));
    }
    if is_stateless_version(&headers) {
        return stateless_only_post();
    }
    let caller = match caller(&state, &headers, peer.as_deref(), "http").await {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    let session = match session_of(&state, &headers, &caller).await {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if let Some(shared) = session.shared()
        && let Err(e) = shared.delete(&session.id).await
    {
        let e = crate::relay::bus::unavailable(&e);
        return rpc_error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    state.gateway.sessions.remove(&session.id);
    exchange::close(&state.gateway.relay, &session).await;
    tracing::info!(session = %&session.id[..8], "Client session closed");
    StatusCode::NO_CONTENT.into_response()
}

/// Whether a request names a revision outside the handshake era (2026-07-28 on): such
/// clients have no sessions, so no GET stream and nothing to DELETE.
fn is_stateless_version(headers: &HeaderMap) -> bool {
    headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !Era::Handshake.speaks(v))
}

fn stateless_only_post() -> Response {
    let mut resp = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "2026-07-28 has no sessions: only POST is served for this revision",
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    resp
}

/// The session named by `Mcp-Session-Id`: 400 when absent, 404 when unknown or expired (the
/// client must then initialize again), and 404 as well when it belongs to another principal:
/// a session id alone is not a credential, and its existence is not revealed.
async fn session_of(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Arc<Session>, Box<Response>> {
    let Some(id) = headers.get(SESSION_HEADER) else {
        let e =
            ErrorObject::invalid_request("missing Mcp-Session-Id header: send initialize first");
        return Err(Box::new(rpc_error(StatusCode::BAD_REQUEST, e)));
    };
    let id = id.to_str().unwrap_or("");
    let found = match exchange::find_session(&state.gateway, id, &caller.principal).await {
        Ok(found) => found,
        Err(e) => return Err(Box::new(rpc_error(StatusCode::SERVICE_UNAVAILABLE, e))),
    };
    found
        .filter(|s| s.belongs_to(&caller.principal))
        .ok_or_else(|| {
            let e =
                ErrorObject::invalid_request("unknown or expired session: initialize a new one");
            Box::new(rpc_error(StatusCode::NOT_FOUND, e))
        })
}

/// After the handshake a client names the negotiated revision on every request. An unknown
/// or unsupported revision is refused with 400 (transport spec). A supported revision other
/// than the negotiated one is accepted: the spec asks for 400 only when the value is invalid
/// or unsupported, and real clients (the conformance suite among them) send their transport
/// default here; the session keeps the negotiated revision either way.
fn check_version_header(headers: &HeaderMap, session: &Session) -> Result<(), Box<Response>> {
    let Some(v) = headers.get(VERSION_HEADER) else {
        return Ok(());
    };
    let v = v.to_str().unwrap_or("");
    if !Era::Handshake.speaks(v) {
        let supported = Era::Handshake.revisions().join(", ");
        let e = ErrorObject::invalid_request(format!(
            "unsupported MCP-Protocol-Version {v:?}; supported: {supported}"
        ));
        return Err(Box::new(rpc_error(StatusCode::BAD_REQUEST, e)));
    }
    if v != session.protocol_version {
        tracing::debug!(header = %v, negotiated = %session.protocol_version, "MCP-Protocol-Version differs from the negotiated revision");
    }
    Ok(())
}

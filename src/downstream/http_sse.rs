//! The 2024-11-05 HTTP+SSE transport, for clients that predate Streamable HTTP: a client
//! opens `GET /sse`, whose first event (`endpoint`) names `/message?session_id=…`; it POSTs
//! every message there (answered 202) and reads every gateway message, responses included,
//! from the SSE stream. Closing the stream ends the session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::StreamExt;

use super::answer::{sse_json, sse_response};
use super::exchange;
use super::web::{AppState, Opening, Peer, accepts, caller, is_json, read_body, rpc_error};
use crate::gateway::Gateway;
use crate::pipeline::Caller;
use crate::protocol::jsonrpc::ParseError;
use crate::protocol::{ErrorObject, Message, Response as RpcResponse, methods};
use crate::session::Session;
use crate::session::client::GET_STREAM;
use crate::session::events::EventLog;

pub const SSE_PATH: &str = "/sse";
pub const MESSAGE_PATH: &str = "/message";

/// Ends the session when the client's SSE stream goes away.
struct CloseOnDrop {
    gateway: Arc<Gateway>,
    opening: Opening,
    id: String,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.opening.remove(&self.id);
        let (gateway, id) = (self.gateway.clone(), std::mem::take(&mut self.id));
        tokio::spawn(async move {
            if let Some(session) = gateway.sessions.remove(&id) {
                exchange::close(&gateway.relay, &session).await;
            }
        });
    }
}

pub(crate) async fn open(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    if let Err((status, msg)) = state.guard.check(&headers) {
        return rpc_error(status, ErrorObject::invalid_request(msg));
    }
    if !accepts(&headers, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            ErrorObject::invalid_request("Accept must list text/event-stream"),
        );
    }
    let opener = match caller(&state, &headers, peer.as_deref(), "sse").await {
        Ok(caller) => caller.principal,
        Err(resp) => return *resp,
    };
    if state.gateway.draining() {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            super::exchange::shutting_down(),
        );
    }
    // Streams waiting for their `initialize` are bounded like sessions; the session itself
    // is admitted (evicting an idle one if need be) when `initialize` comes.
    if state.opening.len() >= state.gateway.sessions.max() {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorObject::invalid_request("too many sessions"),
        );
    }
    let bytes: [u8; 32] = rand::random();
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let log = EventLog::unreplayable(GET_STREAM);
    state.opening.insert(id.clone(), (log.clone(), opener));
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("{MESSAGE_PATH}?session_id={id}"));
    let guard = CloseOnDrop {
        gateway: state.gateway.clone(),
        opening: state.opening.clone(),
        id,
    };
    let messages = log.follow(0).map(move |(_, json)| {
        let _hold = &guard;
        sse_json(&json.text())
    });
    let shutdown = state.gateway.shutdown.clone().cancelled_owned();
    let events = futures::stream::once(async move { Ok(endpoint) })
        .chain(messages)
        .take_until(shutdown);
    sse_response(events)
}

pub(crate) async fn message(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err((status, msg)) = state.guard.check(&headers) {
        return rpc_error(status, ErrorObject::invalid_request(msg));
    }
    let caller = match caller(&state, &headers, peer.as_deref(), "sse").await {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    if !is_json(&headers) {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorObject::invalid_request("Content-Type must be application/json"),
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
    let Some(id) = query.get("session_id") else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            ErrorObject::invalid_request("missing session_id"),
        );
    };
    let bytes = match read_body(&state, body).await {
        Ok(bytes) => bytes,
        Err(resp) => return *resp,
    };
    let msg = match Message::parse(&bytes) {
        Ok(m) => m,
        Err(ParseError::Invalid(e)) => return rpc_error(StatusCode::BAD_REQUEST, e),
        Err(ParseError::Batch(_)) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                ErrorObject::invalid_request("batches are not part of the HTTP+SSE transport"),
            );
        }
    };
    let gateway = state.gateway.clone();
    if let Some(session) = gateway
        .sessions
        .get(id)
        .filter(|s| s.belongs_to(&caller.principal))
    {
        // A request is charged to the session until its answer is on the stream: a client
        // that does not read its stream is refused here instead of piling answers up.
        let held = match (&msg, session.budget()) {
            (Message::Request(_), Some(budget)) => match budget.try_charge(bytes.len()) {
                Some(charge) => Some(charge),
                None => return over_budget(),
            },
            _ => None,
        };
        deliver(gateway, session, msg, caller, held).await;
        return StatusCode::ACCEPTED.into_response();
    }
    // A stream opened by someone else is "unknown" to this caller, as sessions are.
    let opening = state
        .opening
        .get(id)
        .filter(|entry| {
            entry.1.subject == caller.principal.subject && entry.1.method == caller.principal.method
        })
        .map(|entry| entry.0.clone());
    match (opening, msg) {
        (Some(log), Message::Request(req)) if req.method == methods::INITIALIZE => {
            let make =
                |v: &str, info, caps| Session::with_stream(id.clone(), log.clone(), v, info, caps);
            let reply = match exchange::initialize(&gateway, &req, caller, make).await {
                Ok((result, _)) => RpcResponse::ok(req.id, result),
                Err(e) => RpcResponse::err(Some(req.id), e),
            };
            state.opening.remove(id);
            log.push(Message::Response(reply));
            StatusCode::ACCEPTED.into_response()
        }
        (Some(_), _) => rpc_error(
            StatusCode::BAD_REQUEST,
            ErrorObject::invalid_request("send initialize first"),
        ),
        (None, _) => rpc_error(
            StatusCode::NOT_FOUND,
            ErrorObject::invalid_request("unknown or closed session"),
        ),
    }
}

/// 503 for a session whose stream holds more than its budget (or the gateway more than its).
fn over_budget() -> Response {
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorObject::new(
            crate::protocol::codes::GATEWAY_BUSY,
            "too many unread bytes on this session's SSE stream (buffers.session_bytes, or \
             buffers.total_bytes for the gateway): read the stream, then send again",
        ),
    )
}

/// Handles a message of an initialized session; answers travel on the SSE stream. `held`
/// keeps a request charged to the session's budget until its answer is queued.
async fn deliver(
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    msg: Message,
    caller: Caller,
    held: Option<crate::session::budget::Charge>,
) {
    match msg {
        Message::Request(req) => {
            tokio::spawn(async move {
                let _held = held;
                exchange::request_streamed(&gateway.pipeline(), &session, req, caller, |msg| {
                    session.send(msg);
                })
                .await;
            });
        }
        Message::Notification(n) => exchange::notification(&gateway.upstreams, &session, n).await,
        Message::Response(r) => exchange::response(&gateway.relay, &session, r),
    }
}

//! Server→client requests: `sampling/createMessage`, `elicitation/create`, `roots/list` and
//! `ping` from an upstream, sent to the client whose request the upstream is serving, under a
//! gateway-minted id; the client's answer goes back to the upstream under the upstream's id.
//!
//! Ids are minted per gateway (`manifold-s2c-N`), so requests from different upstreams, whose
//! own ids collide freely, never collide at a client. Only kinds the client declared in its
//! capabilities are forwarded; the others are answered with an error naming what is missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde_json::{Value, json};

use super::send;
use crate::downstream::Session;
use crate::gateway::Gateway;
use crate::protocol::{ErrorObject, Id, Message, Notification, Request, Response, codes, methods};
use crate::upstream::peer::{Origin, Peer};

/// Most server→client requests awaiting clients' answers; past it upstreams get "busy".
const MAX_PENDING: usize = 10_000;

struct Pending {
    peer: Arc<Peer>,
    upstream: usize,
    upstream_id: Id,
    session: String,
}

#[derive(Default)]
pub struct ClientRequests {
    pending: DashMap<String, Pending>,
    next: AtomicU64,
}

/// Forwards one upstream request to its client, or answers the upstream with why not.
pub async fn forward(
    gateway: &Gateway,
    upstream: usize,
    peer: Arc<Peer>,
    request: Request,
    origin: Option<Arc<Origin>>,
) {
    let name = gateway
        .upstreams
        .get(upstream)
        .map(|u| u.name().to_owned())
        .unwrap_or_default();
    let session = origin
        .as_deref()
        .and_then(|o| gateway.sessions.peek(o.session.as_deref()?));
    let Some((session, origin)) = session.zip(origin) else {
        // Roots belong to a client; with no client request in flight there are none to give.
        let outcome = if request.method == methods::ROOTS_LIST {
            Ok(json!({ "roots": [] }))
        } else if request.method == methods::PING {
            Ok(json!({}))
        } else {
            let why = format!(
                "{} must relate to a client request in flight; none is",
                request.method
            );
            Err(ErrorObject::new(codes::INVALID_REQUEST, why))
        };
        return peer.respond(request.id, outcome).await;
    };
    if let Err(e) = permitted(&session, &request) {
        tracing::debug!(upstream = %name, method = %request.method, error = %e.message, "Refused a server→client request");
        return peer.respond(request.id, Err(e)).await;
    }
    let table = &gateway.relay.client_requests;
    if table.pending.len() >= MAX_PENDING {
        let busy = ErrorObject::new(
            codes::GATEWAY_BUSY,
            "gateway busy: too many requests awaiting clients",
        );
        return peer.respond(request.id, Err(busy)).await;
    }
    let id = format!(
        "manifold-s2c-{}",
        table.next.fetch_add(1, Ordering::Relaxed)
    );
    let entry = Pending {
        peer: peer.clone(),
        upstream,
        upstream_id: request.id.clone(),
        session: session.id.clone(),
    };
    table.pending.insert(id.clone(), entry);
    let msg = Message::Request(Request::new(
        Id::Str(id.clone()),
        request.method.clone(),
        request.params,
    ));
    if !send(&session, msg, origin.sink.as_ref()) {
        table.pending.remove(&id);
        let e = ErrorObject::upstream_unavailable(
            &name,
            "the client has no open stream to receive the request",
        );
        peer.respond(request.id, Err(e)).await;
    }
}

/// A client's answer to a forwarded request. False when the id is not one the gateway sent
/// to this session (a stale or foreign answer, which is ignored).
pub fn answered(gateway: &Gateway, session: &Session, response: Response) -> bool {
    let Some(Id::Str(id)) = &response.id else {
        return false;
    };
    let table = &gateway.relay.client_requests;
    let Some((_, pending)) = table.pending.remove_if(id, |_, p| p.session == session.id) else {
        return false;
    };
    tokio::spawn(async move {
        pending
            .peer
            .respond(pending.upstream_id, response.outcome)
            .await
    });
    true
}

/// The upstream gave up on a request it sent; tell the client, under the gateway's id.
pub fn cancelled_by_upstream(gateway: &Gateway, upstream: usize, mut params: Value) -> bool {
    let Some(upstream_id) = params.get("requestId").and_then(Id::from_value) else {
        return false;
    };
    let table = &gateway.relay.client_requests;
    let found = table
        .pending
        .iter()
        .find(|p| p.upstream == upstream && p.upstream_id == upstream_id)
        .map(|p| (p.key().clone(), p.session.clone()));
    let Some((id, session)) = found else {
        return false;
    };
    table.pending.remove(&id);
    params["requestId"] = Value::from(id);
    let Some(session) = gateway.sessions.peek(&session) else {
        return false;
    };
    session.send(Message::Notification(Notification::new(
        methods::CANCELLED,
        Some(params),
    )))
}

/// A session ended: its unanswered requests fail at their upstreams.
pub async fn session_closed(gateway: &Gateway, session: &str) {
    let table = &gateway.relay.client_requests;
    let ids: Vec<String> = table
        .pending
        .iter()
        .filter(|p| p.session == session)
        .map(|p| p.key().clone())
        .collect();
    for id in ids {
        if let Some((_, p)) = table.pending.remove(&id) {
            let e = ErrorObject::new(
                codes::INTERNAL_ERROR,
                "the client session closed before answering",
            );
            p.peer.respond(p.upstream_id, Err(e)).await;
        }
    }
}

/// Whether the client declared the capability the request needs.
fn permitted(session: &Session, request: &Request) -> Result<(), ErrorObject> {
    let caps = &session.client_capabilities;
    let missing = |cap: &str| {
        ErrorObject::new(
            codes::METHOD_NOT_FOUND,
            format!("the client did not declare the '{cap}' capability"),
        )
    };
    match request.method.as_str() {
        methods::SAMPLING_CREATE_MESSAGE if caps.get("sampling").is_none() => {
            Err(missing("sampling"))
        }
        methods::ROOTS_LIST if caps.get("roots").is_none() => Err(missing("roots")),
        methods::ELICITATION_CREATE => {
            let Some(elicitation) = caps.get("elicitation") else {
                return Err(missing("elicitation"));
            };
            let mode = request
                .param("mode")
                .and_then(Value::as_str)
                .unwrap_or("form");
            // An empty elicitation object means form mode only (2025-11-25 client capabilities).
            let empty = elicitation.as_object().is_none_or(|o| o.is_empty());
            let supported = elicitation.get(mode).is_some() || (mode == "form" && empty);
            if supported {
                Ok(())
            } else {
                Err(ErrorObject::invalid_params(format!(
                    "the client does not support elicitation mode '{mode}'"
                ))
                .with_data(json!({ "mode": mode })))
            }
        }
        methods::SAMPLING_CREATE_MESSAGE | methods::ROOTS_LIST | methods::PING => Ok(()),
        other => Err(ErrorObject::method_not_found(other)),
    }
}
